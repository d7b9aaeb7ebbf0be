import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";

const root = new URL(".", import.meta.url).pathname;
const readme = readFileSync(`${root}README.md`, "utf8");

/** The TypeScript blocks of README.md, with the section each is in. */
function examples(): { section: string; code: string }[] {
  const out: { section: string; code: string }[] = [];
  let section = "";
  const lines = readme.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith("## ")) section = l.slice(3);
    if (l === "```ts") {
      const end = lines.indexOf("```", i + 1);
      out.push({ section, code: lines.slice(i + 1, end).join("\n") });
      i = end;
    }
  }
  return out;
}

/**
 * What a block prints: each `console.log(...); // text` line promises one
 * output line, `text`.
 */
function promised(code: string): string[] {
  const out: string[] = [];
  for (const l of code.split("\n")) {
    const m = /^\s*console\.log\(.*\);\s*\/\/ (.*)$/.exec(l);
    if (m !== null) out.push(m[1]!);
  }
  return out;
}

/** Runs `code` as a program saved in the repository root, under the runtime running this test. */
function runHere(code: string): { status: number | null; stdout: string; stderr: string } {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const [cmd, args] = deno !== undefined
    ? [deno.execPath(), ["run", "-A", "-"]]
    : [process.execPath, ["run", "-"]];
  return spawnSync(cmd, args, {
    cwd: root,
    input: code,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
}

const blocks = examples().filter((b) => b.section !== "Your own device");

test("README: the public API's examples import the package by name", () => {
  const api = blocks.filter((b) => b.section === "The public API");
  assert.ok(api.length >= 4, `${api.length} examples`);
  for (const b of api) assert.match(b.code, /from "@vmemu\/vmemu(\/(mm|machine|boot|devices))?";/);
});

for (const [n, b] of blocks.entries()) {
  test(`README "${b.section}" example ${n + 1}: runs as written and prints what it says`, () => {
    const r = runHere(b.code);
    assert.equal(r.status, 0, r.stderr);
    const want = promised(b.code);
    assert.deepEqual(r.stdout.trimEnd().split("\n").slice(0, want.length), want);
  });
}
