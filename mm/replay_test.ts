import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { checkSvg } from "./svg_check_test_util.ts";
import { compareTrace } from "./replay_compare.ts";
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

const root = new URL("..", import.meta.url).pathname;

/** Runs mm/replay.ts as a user would; under Deno with read access and `allow` alone. */
function replayCmd(args: string[], input = "", allow: string[] = []) {
  const perms = allow.length > 0 ? allow : ["--deny-write"];
  if (!allow.includes("--allow-all")) perms.unshift("-R");
  const argv = "Deno" in globalThis
    ? ["run", ...perms, "mm/replay.ts", ...args]
    : ["mm/replay.ts", ...args];
  return spawnSync(process.execPath, argv, { cwd: root, input, encoding: "utf8" });
}

/** Exit status 2 and one line on standard error matching `re`, nothing on standard output. */
function refused(r: ReturnType<typeof replayCmd>, re: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, re);
}

const CREATE =
  '{"op":"create","arena":"a","base":65536,"size":65536,"quantum":4096,"qcache_max":0,"source":null,"flags":[]}';

/** A 3-page hole below an 11-page tail; then 3 pages: instant-fit takes the tail, best-fit the hole. */
const HOLE = [
  CREATE,
  '{"op":"alloc","arena":"a","size":4096,"flags":["nosleep"],"id":1}',
  '{"op":"alloc","arena":"a","size":12288,"flags":["nosleep"],"id":2}',
  '{"op":"alloc","arena":"a","size":4096,"flags":["nosleep"],"id":3}',
  '{"op":"free","arena":"a","id":2}',
  '{"op":"alloc","arena":"a","size":12288,"flags":["nosleep"],"id":4}',
  '{"op":"free","arena":"a","id":2}',
  '{"op":"free","arena":"a","id":4}',
].join("\n");

test("replay: the command reads standard input for - and refuses a bad kind with status 2", () => {
  const trace = [
    CREATE,
    '{"op":"alloc","arena":"a","size":8192,"flags":["nosleep","endalloc"]}',
    '{"op":"physload"}',
  ].join("\n");
  const r = replayCmd(["vmem", "-"], trace);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 2), ['{"ok":true}', '{"addr":122880}']);
  assert.match(lines[2]!, /^\{"error":"[A-Z]+"/);
  refused(replayCmd(["heap", "-"]), /^replay\.ts: unknown kind "heap" \(one of vmem, pglist/);
  const usage = replayCmd([]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /^usage: replay\.ts vmem\|pglist/);
});

test("replay: --policy replaces the policy of every allocation; a free of an id not live is an error line", () => {
  const plain = replayCmd(["vmem", "-"], HOLE);
  assert.equal(plain.status, 0, plain.stderr);
  const best = replayCmd(["vmem", "--policy", "bestfit", "-"], HOLE);
  assert.equal(best.status, 0, best.stderr);
  const p = plain.stdout.trimEnd().split("\n"), b = best.stdout.trimEnd().split("\n");
  assert.equal(p[5], '{"addr":86016}', "instant-fit: the tail");
  assert.equal(b[5], '{"addr":69632}', "best-fit: the hole");
  for (const out of [p, b]) {
    assert.match(out[6]!, /^\{"error":"BADFREE","message":"id 2 names no live allocation"\}$/);
    assert.equal(out[7], '{"ok":true}', "replay goes on after the error line");
  }
  // A FreeBSD trace takes its own policy words, or the registered names.
  for (const policy of ["firstfit", "freebsd-firstfit"]) {
    const f = replayCmd(["vmem-freebsd", "--policy", policy, "-"], HOLE);
    assert.equal(f.status, 0, f.stderr);
    assert.equal(f.stdout.trimEnd().split("\n")[5], '{"addr":69632}', `${policy}: the hole`);
  }
});

test(
  "replay: a bad policy, kind or flag is one line naming it, exit 2",
  { timeout: 120_000 },
  () => {
    refused(
      replayCmd(["vmem", "--policy", "best", "-"]),
      /--policy: "best" is not a policy of vmem traces \(one of instantfit, bestfit/,
    );
    refused(
      replayCmd(["pglist", "--policy", "bestfit", "-"]),
      /--policy: "bestfit" is not a policy of pglist traces/,
    );
    refused(
      replayCmd(["vmem-freebsd", "--policy", "nextfit", "-"]),
      /--policy: "nextfit" is not a policy of vmem-freebsd traces/,
    );
    refused(
      replayCmd(["vmem", "--policy", "freebsd-firstfit", "-"]),
      /--policy: "freebsd-firstfit" is not a policy of vmem traces/,
    );
    refused(
      replayCmd(["vmem", "--compare", "bestfit,worst", "-"]),
      /--compare: unknown policy "worst"/,
    );
    refused(replayCmd(["vmem", "--compare", "bestfit,bestfit", "-"]), /"bestfit" is named twice/);
    refused(replayCmd(["pglist", "--compare", "bestfit", "-"]), /pglist traces have no policies/);
    refused(replayCmd(["vmem", "--json", "-"]), /--json goes with --compare/);
    refused(
      replayCmd(["vmem", "--policy", "bestfit", "--compare", "bestfit", "-"]),
      /do not go together/,
    );
    refused(replayCmd(["vmem", "--bogus", "-"]), /bogus/);
    refused(replayCmd(["vmem", "/nonexistent/t.jsonl"]), /cannot read \/nonexistent\/t\.jsonl/);
  },
);

test("replay: --compare prints the figures of each policy, as JSON or as a table", () => {
  const json = replayCmd([
    "vmem",
    "--compare",
    "instantfit,bestfit,firstfit,nextfit",
    "--json",
    "-",
  ], HOLE);
  assert.equal(json.status, 0, json.stderr);
  assert.match(json.stderr, /^replay\.ts: instantfit: 1 lines refused \(first: line 7, BADFREE/);
  const { policies } = JSON.parse(json.stdout);
  const keys = Object.keys(compareTrace(HOLE, ["bestfit"], { repeat: 1 }).runs[0]!.figures);
  assert.deepEqual(policies.map((p: { policy: string }) => p.policy), [
    "instantfit",
    "bestfit",
    "firstfit",
    "nextfit",
  ]);
  for (const p of policies) {
    assert.deepEqual(Object.keys(p), keys, "the keys the library gives, in order");
    assert.equal(p.peakInUse, 5 * 4096);
    assert.equal(p.failures, 0);
  }
  // FreeBSD's policies replay the same trace on FreeBSD's arenas.
  const both = replayCmd([
    "vmem",
    "--compare",
    "bestfit,freebsd-bestfit,freebsd-firstfit",
    "--json",
    "-",
  ], HOLE);
  assert.equal(both.status, 0, both.stderr);
  for (const p of JSON.parse(both.stdout).policies) assert.equal(p.peakInUse, 5 * 4096, p.policy);
  // On a FreeBSD trace a policy word is FreeBSD's, as with --policy.
  const freebsd = replayCmd(["vmem-freebsd", "--compare", "bestfit,firstfit", "--json", "-"], HOLE);
  assert.equal(freebsd.status, 0, freebsd.stderr);
  const named = replayCmd([
    "vmem",
    "--compare",
    "freebsd-bestfit,freebsd-firstfit",
    "--json",
    "-",
  ], HOLE);
  const figures = (out: string) =>
    JSON.parse(out).policies.map((p: { nsPerOp?: number }) => ({ ...p, nsPerOp: 0 }));
  assert.deepEqual(
    figures(freebsd.stdout).map((p: { policy: string }) => p.policy),
    ["freebsd-bestfit", "freebsd-firstfit"],
  );
  assert.deepEqual(figures(freebsd.stdout), figures(named.stdout));
  refused(
    replayCmd(["vmem-freebsd", "--compare", "bestfit,freebsd-bestfit", "-"]),
    /"freebsd-bestfit" is named twice/,
  );
  const table = replayCmd(["vmem", "--compare", "bestfit,nextfit", "-"], HOLE);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /^policy +peak in use .*\nbestfit +20,480 +65,536 /);
});

test(
  "replay: --compare --svg draws the policies; an output it cannot write is refused before replaying",
  { timeout: 120_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "vmemu-replay-"));
    try {
      const svg = join(dir, "c.svg");
      const trace = join(dir, "t.jsonl");
      // The trace without its bad free: no line refused, nothing on standard error.
      writeFileSync(trace, HOLE.split("\n").filter((_, i) => i !== 6).join("\n"));
      const args = ["vmem", "--compare", "instantfit,bestfit", trace, "--svg"];
      const ok = replayCmd([...args, svg], "", [`--allow-write=${svg}`]);
      assert.equal(ok.status, 0, ok.stderr);
      checkSvg(readFileSync(svg, "utf8"), ["instantfit", "bestfit", "arena a", "fragmentation"]);
      for (
        const [out, re] of [
          ["/nonexistent/x.svg", /cannot write \/nonexistent\/x\.svg: no such directory/],
          [dir, /cannot write .*: it is a directory/],
        ] as const
      ) {
        refused(replayCmd([...args, out], "", [`--allow-write=${out}`]), re);
      }
      assert.equal(existsSync("/nonexistent"), false);
      if ("Deno" in globalThis) {
        const denied = join(dir, "denied.svg");
        refused(replayCmd([...args, denied]), /no write access to .*denied\.svg/);
        assert.equal(existsSync(denied), false, "nothing written");
      }
      if (existsSync("/dev/full")) {
        refused(
          // Deno lets a program write a device only with every permission.
          replayCmd([...args, "/dev/full"], "", ["--allow-all"]),
          /cannot write \/dev\/full: no space left/,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
