import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;

/** The first TypeScript block of README.md's "Your own device" section. */
function example(): string {
  const readme = readFileSync(`${root}README.md`, "utf8");
  const section = readme.split("\n## Your own device\n")[1]?.split("\n## ")[0];
  assert.ok(section !== undefined, 'README.md has a "Your own device" section');
  const m = /\n```ts\n([\s\S]*?)\n```\n/.exec(section);
  assert.ok(m !== null, "the section holds a TypeScript example");
  return m[1]!;
}

test('README "Your own device": the example runs as written from the repository root', () => {
  const code = example();
  // Under the runtime running this test, reading the program from standard
  // input with the repository root as the working directory, as a file
  // saved there would be run.
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const [cmd, args] = deno !== undefined
    ? [deno.execPath(), ["run", "-A", "-"]]
    : [process.execPath, ["run", "-"]];
  const r = spawnSync(cmd, args, {
    cwd: root,
    input: code,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout.split("\n");
  const honoured = out.indexOf(out.find((l) => l.startsWith("tag honoured: "))!);
  const ignored = out.indexOf(out.find((l) => l.startsWith("tag ignored: "))!);
  assert.ok(honoured >= 0 && ignored > honoured, r.stdout);
  const part = (from: number, to: number) => out.slice(from, to).join("\n");
  const good = part(honoured, ignored), bad = part(ignored, out.length);
  assert.match(good, /window \[0x0, 0xfffffff\] align 8 boundary 0x10000 segments 4/);
  assert.equal((good.match(/: ok$/gm) ?? []).length, 3, "every transfer checked out");
  assert.match(good, /bounced [1-9]\d* bytes; faults 0, 0 of 0 breaches caught/);
  assert.equal((bad.match(/: fault$/gm) ?? []).length, 3, "every breach faulted");
  assert.match(bad, /faults 3, 3 of 3 breaches caught/);
  const noLeaks = '"pages":0,"heapBytes":0,"kvaBytes":0,"ids":0,"pageLists":0,' +
    '"handlers":0,"dmaMaps":0,"dmaMemory":0,"dmaTags":0';
  for (const p of [good, bad]) {
    assert.match(p, /problems: \[\]/);
    assert.ok(p.includes(`leaks: {${noLeaks}}`), p);
  }
});
