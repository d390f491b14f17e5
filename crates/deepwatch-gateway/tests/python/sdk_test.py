"""The official `openai` Python SDK through the deepwatch gateway.

Run by the Rust test `sdk::openai_python_sdk_through_the_gateway` with
GOOD_BASE_URL (a gateway in front of a healthy upstream) and BAD_BASE_URL (a gateway whose
upstream answers 500). Each check asserts; any failure exits non-zero with a traceback.
"""

import os

import openai

good = openai.OpenAI(base_url=os.environ["GOOD_BASE_URL"], api_key="sk-test", max_retries=0, timeout=20)
bad = openai.OpenAI(base_url=os.environ["BAD_BASE_URL"], api_key="sk-test", max_retries=0, timeout=20)
messages = [{"role": "user", "content": "hi"}]


def non_streaming():
    resp = good.chat.completions.create(model="m", messages=messages)
    assert resp.choices[0].message.content == "Hello there, friend.", resp
    assert resp.choices[0].finish_reason == "stop", resp
    assert resp.usage.completion_tokens == 5 and resp.usage.prompt_tokens == 7, resp.usage


def streaming_without_usage():
    chunks = list(good.chat.completions.create(model="m", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, friend.", text
    # The gateway asked upstream for usage but must not pass the extra chunk on.
    assert all(c.usage is None for c in chunks), [c.usage for c in chunks]
    assert all(c.choices for c in chunks), "a chunk without choices reached the client"


def streaming_with_usage():
    chunks = list(
        good.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None, last
    assert last.usage.completion_tokens == 5, last.usage


def upstream_error_raises():
    try:
        bad.chat.completions.create(model="m", messages=messages)
    except openai.InternalServerError as e:
        assert e.status_code == 500, e.status_code
        assert "engine failed with 500" in str(e), str(e)
    else:
        raise AssertionError("no exception for an upstream 500")


def cancel_midway():
    stream = good.chat.completions.create(model="m", messages=messages, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()


for check in [non_streaming, streaming_without_usage, streaming_with_usage, upstream_error_raises, cancel_midway]:
    check()
    print(f"ok {check.__name__}", flush=True)
print("all sdk checks passed")
