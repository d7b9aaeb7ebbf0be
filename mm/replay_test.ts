import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { type Replayer, replayText } from "./replayer.ts";
import { KernelError } from "./errors.ts";

/** A replayer that echoes its op, or refuses ops named "bad". */
const echo: Replayer = {
  apply(op) {
    if (op.op === "bad") throw new KernelError("EINVAL", "bad op");
    return { seen: op.op };
  },
};

function replay(text: string): string[] {
  const out: string[] = [];
  replayText(text, echo, (l) => out.push(l));
  return out;
}

test("replay: blank and # lines produce nothing; every other line one output line", () => {
  assert.deepEqual(replay('# comment\n\n  \n{"op":"a"}\n   # indented comment\n{"op":"b"}\n'), [
    '{"seen":"a"}',
    '{"seen":"b"}',
  ]);
});

test("replay: bad JSON, a non-object and a refusal are error lines, and replay goes on", () => {
  const out = replay('{"op":\n[1,2]\n{"op":"bad"}\n{"op":"c"}');
  assert.equal(out.length, 4);
  assert.match(out[0]!, /^\{"error":"BADJSON","message":/);
  assert.match(out[1]!, /^\{"error":"BADOP","message":/);
  assert.equal(out[2], '{"error":"EINVAL","message":"bad op"}');
  assert.equal(out[3], '{"seen":"c"}');
});

test("replay: the command reads standard input for - and refuses a bad kind with status 2", () => {
  const root = new URL("..", import.meta.url).pathname;
  const run = (args: string[], input: string) => {
    const argv = "Deno" in globalThis
      ? ["run", "-R", "mm/replay.ts", ...args]
      : ["mm/replay.ts", ...args];
    return spawnSync(process.execPath, argv, { cwd: root, input, encoding: "utf8" });
  };
  const trace = [
    '{"op":"create","arena":"a","base":4096,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}',
    '{"op":"alloc","arena":"a","size":8192,"flags":["nosleep","endalloc"]}',
    '{"op":"physload"}',
  ].join("\n");
  const r = run(["vmem", "-"], trace);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 2), ['{"ok":true}', '{"addr":61440}']);
  assert.match(lines[2]!, /^\{"error":"[A-Z]+"/);
  const bad = run(["heap", "-"], "");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^usage: replay.ts vmem\|pglist\|vmem-freebsd FILE/);
});
