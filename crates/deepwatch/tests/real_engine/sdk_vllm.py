"""The official openai SDK through deepwatch's gateway to a real vLLM.

usage: python sdk_vllm.py GATEWAY_URL VLLM_URL MODEL

Runs each case with the SDK and prints one JSON object of what it observed; the Rust scenario
(gateway.rs) asserts on it. vLLM's own /metrics (read with httpx) show what the engine counted
for a client that cancels mid-stream.
"""

import json
import sys
import time

import httpx
import openai

GATEWAY, VLLM, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key="sk-real-engine", max_retries=0, timeout=60)
MESSAGES = [{"role": "user", "content": "Name a city."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_city",
            "description": "Look a city up.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                "required": ["city"],
            },
        },
    }
]


def vllm_counters():
    """vLLM's generation tokens, running requests and finished requests by reason."""
    text = httpx.get(f"{VLLM}/metrics").text
    out = {"generation_tokens": 0.0, "running": 0.0, "finished": {}}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("vllm:generation_tokens_total"):
            out["generation_tokens"] += float(value)
        elif name.startswith("vllm:num_requests_running"):
            out["running"] += float(value)
        elif name.startswith("vllm:request_success_total"):
            reason = name.split('finished_reason="')[1].split('"')[0]
            out["finished"][reason] = out["finished"].get(reason, 0.0) + float(value)
    return out


def stream_case(include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=16, stream=True,
        extra_body={"ignore_eos": True}, **kwargs,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = [c.usage.model_dump() for c in chunks if c.usage is not None]
    return {
        "chunks": len(chunks),
        "ids": len({c.id for c in chunks}),
        "text_chars": len(text),
        "finish": finish,
        "usage": usage,
        "usage_chunk_choices": [len(c.choices) for c in chunks if c.usage is not None],
    }


def n2_case():
    whole = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, n=2, temperature=1.0, seed=3,
        extra_body={"ignore_eos": True},
    )
    streamed = list(client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, n=2, temperature=1.0, seed=3, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    ))
    finishes = {}
    for c in streamed:
        for ch in c.choices:
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
    return {
        "whole_indexes": [c.index for c in whole.choices],
        "whole_finish": [c.finish_reason for c in whole.choices],
        "whole_usage": whole.usage.model_dump(),
        "stream_indexes": sorted({ch.index for c in streamed for ch in c.choices}),
        "stream_finish": finishes,
        "stream_usage": [c.usage.model_dump() for c in streamed if c.usage is not None],
    }


def stop_case():
    stops = ["e", "a", "o"]
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100, stop=stops, temperature=0)
    s = list(client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=100, stop=stops, temperature=0, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    return {
        "finish": r.choices[0].finish_reason,
        "text": r.choices[0].message.content,
        "stream_text": streamed,
        "stream_finish": [c.choices[0].finish_reason for c in s if c.choices and c.choices[0].finish_reason],
        "stops": stops,
    }


def tools_case():
    # A named tool choice makes vLLM constrain the answer to the tool's argument schema and
    # return it as a call of that function (vllm.rs SERVE_ENV and SERVE_ARGS say why this path).
    named = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=120, temperature=0, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_city"}}, parallel_tool_calls=False,
    )
    msg = named.choices[0].message
    auto = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, tools=TOOLS, tool_choice="auto")
    try:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=8, tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "no_such_tool"}},
        )
        bad = {"status": 200}
    except openai.APIStatusError as e:
        bad = {"status": e.status_code, "message": str(e.message)}
    return {
        "named_tool_calls": [[t.type, t.function.name] for t in (msg.tool_calls or [])],
        "named_arguments": [json.loads(t.function.arguments) for t in (msg.tool_calls or [])],
        "named_finish": named.choices[0].finish_reason,
        "auto_finish": auto.choices[0].finish_reason,
        "bad_tool": bad,
    }


# As long as the engine's context allows (minus room for the prompt): the cancel must land
# before the end even when vLLM's API server lags behind its engine.
MAX_MODEL_LEN = httpx.get(f"{VLLM}/v1/models").json()["data"][0]["max_model_len"]
MAX_TOKENS = MAX_MODEL_LEN - 32


def cancel_case():
    before = vllm_counters()
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True, extra_body={"ignore_eos": True},
    )
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received == 5:
            break
    stream.close()
    closed_at = time.monotonic()
    # Wait until vLLM has nothing running, then a little longer for late counts.
    while vllm_counters()["running"] > 0 and time.monotonic() - closed_at < 10:
        time.sleep(0.05)
    idle_after = time.monotonic() - closed_at
    time.sleep(1.0)
    after = vllm_counters()
    finished = {k: after["finished"].get(k, 0.0) - before["finished"].get(k, 0.0) for k in after["finished"]}
    return {
        "received_chunks": received,
        "max_tokens": MAX_TOKENS,
        "generated_by_vllm": after["generation_tokens"] - before["generation_tokens"],
        "finished_delta": finished,
        "idle_after_secs": idle_after,
    }


def unknown_model_case():
    try:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4)
        return {"status": 200}
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"status": e.status_code, "type": type(e).__name__, "message": str(e.message), "body": body}


results = {
    "openai_version": openai.__version__,
    "stream": stream_case(False),
    "stream_usage": stream_case(True),
    "n2": n2_case(),
    "stop": stop_case(),
    "tools": tools_case(),
    "cancel": cancel_case(),
    "unknown_model": unknown_model_case(),
}
print(json.dumps(results))
