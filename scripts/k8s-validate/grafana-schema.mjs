// Checks Grafana dashboard JSON files against @grafana/schema's Dashboard type with the
// TypeScript compiler (both npm, pinned in package.json): each file becomes an object literal
// typed as `DeepwatchDashboard` (grafana-dashboard.ts), so tsc reports unknown fields, wrong
// types and missing required fields. The import envelope (`__inputs`, `__requires`,
// `__elements`) is not part of the dashboard model and is checked for shape here instead.
// Usage: node grafana-schema.mjs DASHBOARD.json...  Prints one line per file (": ok" or the
// compiler's messages) and exits 1 if any failed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node grafana-schema.mjs DASHBOARD.json...");
  process.exit(2);
}

// Inside this folder, so `@grafana/schema` resolves from its node_modules.
const work = mkdtempSync(join(here, ".tsc-"));
let failed = 0;
try {
  copyFileSync(join(here, "grafana-dashboard.ts"), join(work, "grafana-dashboard.ts"));
  const sources = new Map();
  files.forEach((file, i) => {
    let dash;
    try {
      dash = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      console.log(`${file}: not JSON: ${e.message}`);
      failed++;
      return;
    }
    for (const [key, want] of [["__inputs", "array"], ["__requires", "array"], ["__elements", "object"]]) {
      const v = dash[key];
      const shape = Array.isArray(v) ? "array" : typeof v;
      if (v !== undefined && shape !== want) {
        console.log(`${file}: ${key} must be an ${want}, is ${shape}`);
        failed++;
      }
      delete dash[key];
    }
    const source = join(work, `dashboard${i}.ts`);
    writeFileSync(
      source,
      'import type { DeepwatchDashboard } from "./grafana-dashboard.js";\n' +
        `export const dashboard: DeepwatchDashboard = ${JSON.stringify(dash, null, 1)};\n`,
    );
    sources.set(source, file);
  });
  const program = ts.createProgram([...sources.keys()], {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  });
  const problems = new Map();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const origin = d.file ? sources.get(d.file.fileName) ?? basename(d.file.fileName) : "tsc";
    let where = "";
    if (d.file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      where = ` line ${line + 1} of the typed literal: ${d.file.text.split("\n")[line].trim()}`;
    }
    const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!problems.has(origin)) problems.set(origin, []);
    problems.get(origin).push(`${text}${where}`);
  }
  for (const file of sources.values()) {
    const list = problems.get(file);
    if (list) {
      failed++;
      for (const p of list) console.log(`${file}: ${p}`);
    } else {
      console.log(`${file}: ok`);
    }
  }
  for (const [origin, list] of problems) {
    if (![...sources.values()].includes(origin)) {
      failed++;
      for (const p of list) console.log(`${origin}: ${p}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
