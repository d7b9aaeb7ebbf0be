import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { checkSvg } from "../mm/svg_check_test_util.ts";
import { NO_LEAKS } from "./_test_util.ts";

const root = new URL("..", import.meta.url).pathname;
const isDeno = "Deno" in globalThis;
/**
 * A Deno child of this test process would inherit the test's permissions,
 * so every permission the flags do not grant is denied outright: what
 * boot.ts does under these flags, it does with none.
 */
const DENY = ["read", "write", "env", "net", "run", "ffi", "sys"].map((p) => `--deny-${p}`);

/** Runs `boot.ts` as a user would, with the runtime running this test; `allow` only under Deno. */
function boot(args: string[], allow: string[] = []) {
  const deny = allow.includes("--allow-all")
    ? []
    : DENY.filter((d) => !allow.some((a) => a.startsWith(d.replace("deny", "allow"))));
  const argv = isDeno ? ["run", ...deny, ...allow, "boot.ts", ...args] : ["boot.ts", ...args];
  const r = spawnSync(process.execPath, argv, { cwd: root, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("boot.ts: runs without permission flags and prints a summary that ends in ok", () => {
  const r = boot(["--memory", "64M", "-w", "ids", "-n", "200", "--devices", "none"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^firmware memory map \(pc\):/);
  assert.match(r.stdout, /kernel ready/);
  assert.match(r.stdout, /leaks +0 after shutdown/);
  assert.match(r.stdout, /\nok\n$/);
});

test("boot.ts: --json prints one JSON object with the summary", () => {
  const r = boot(["-m", "isa", "-w", "heap", "-n", "300", "--devices", "none", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.status, 0);
  assert.equal(out.summary.machine.preset, "isa");
  assert.deepEqual(out.summary.leaks, NO_LEAKS);
  assert.equal(out.workloads[0].name, "heap");
});

test("boot.ts: a bad flag or value is one line on stderr and exit status 2", () => {
  for (const args of [["--bogus"], ["-m", "vax"], ["--ops", "many"]]) {
    const r = boot(args);
    assert.equal(r.status, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^boot\.ts: /);
  }
  const help = boot(["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: deno run boot.ts/);
});

test("boot.ts: --svg and --record-* write their files (Deno asks for those files only)", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-"));
  try {
    const svg = join(dir, "m.svg"), vm = join(dir, "v.jsonl"), pg = join(dir, "p.jsonl");
    const args = ["--memory", "64M", "-w", "pressure", "-n", "8", "--devices", "none", "-q"];
    const files = ["--svg", svg, "--record-vmem", vm, "--record-pglist", pg];
    const r = boot([...args, ...files], [`--allow-write=${svg},${vm},${pg}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "", "--quiet prints nothing");
    assert.match(readFileSync(svg, "utf8"), /^<svg [^>]*>[\s\S]*page cache[\s\S]*<\/svg>\n$/);
    assert.match(readFileSync(vm, "utf8"), /^\{"op":"create","arena":"heap"/);
    assert.match(readFileSync(pg, "utf8"), /^\{"op":"config"/);
    if (isDeno) {
      // Without write access the run is refused before it starts.
      rmSync(svg);
      const denied = boot([...args, "--svg", svg]);
      assert.equal(denied.status, 2);
      assert.match(denied.stderr, /--allow-write=/);
      assert.equal(existsSync(svg), false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("boot.ts: --svg without a workload draws the machine as it booted", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-"));
  try {
    const svg = join(dir, "boot.svg");
    const r = boot(["-m", "isa", "-w", "none", "--svg", svg, "-q"], [`--allow-write=${svg}`]);
    assert.equal(r.status, 0, r.stderr);
    const text = readFileSync(svg, "utf8");
    checkSvg(text, ["isa machine, workload none", "after boot", "arena kmem"]);
    // The drivers' rings and bounce pages are page lists, drawn as such.
    assert.match(text, /DMA \/ page lists [1-9]\d* \(/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Exit status 2, one line on standard error matching `re`, nothing on standard output. */
function refused(r: ReturnType<typeof boot>, re: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  assert.match(r.stderr.trimEnd(), re);
}

test("boot.ts: an output it cannot write is refused before booting, naming the path", {
  timeout: 120_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-"));
  try {
    // A run that would take long: refused at once, before the machine is built.
    const slow = ["--memory", "1T", "-q"];
    const t0 = performance.now();
    refused(
      boot([...slow, "--svg", "/nonexistent/x.svg"], ["--allow-write=/nonexistent/x.svg"]),
      /^boot\.ts: cannot write \/nonexistent\/x\.svg: no such directory$/,
    );
    refused(
      boot([...slow, "--record-pglist", dir], [`--allow-write=${dir}`]),
      /^boot\.ts: cannot write .*: it is a directory$/,
    );
    assert.ok(performance.now() - t0 < 20_000, "no machine was booted");
    // A file the checks created is gone again when a later output is refused.
    const vm = join(dir, "v.jsonl");
    refused(
      boot(["-q", "--record-vmem", vm, "--svg", "/nonexistent/y.svg"], [
        `--allow-write=${vm},/nonexistent/y.svg`,
      ]),
      /cannot write \/nonexistent\/y\.svg/,
    );
    assert.equal(existsSync(vm), false, "nothing written");
    if (existsSync("/dev/full")) {
      // A write that fails anyway, at the end, is refused the same way.
      refused(
        boot(["-m", "isa", "-w", "ids", "-n", "50", "-q", "--svg", "/dev/full"], ["--allow-all"]),
        /^boot\.ts: cannot write \/dev\/full: no space left on the device$/,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("boot.ts: negative numbers, an unknown policy and --sample 0 are one line naming the value", {
  timeout: 120_000,
}, () => {
  for (
    const [args, re] of [
      [["-n", "-5"], /^boot\.ts: --ops: expected a whole number from 1 to 10000000, got "-5"$/],
      [["--memory", "-1G"], /^boot\.ts: --memory: not a size: "-1G"/],
      [
        ["--policy", "worstfit"],
        /^boot\.ts: --policy: unknown value "worstfit" \(one of instantfit, bestfit, firstfit, nextfit\)$/,
      ],
      [["--sample", "0"], /^boot\.ts: --sample: expected a whole number from 1/],
    ] as const
  ) {
    refused(boot([...args]), re);
  }
});

test(
  "boot.ts: --policy runs the heap arenas under it; --json reports every arena's fragmentation",
  { timeout: 120_000 },
  () => {
    const r = boot([
      "-m",
      "isa",
      "-w",
      "heap",
      "-n",
      "500",
      "--devices",
      "none",
      "--policy",
      "firstfit",
      "--json",
      "--sample",
      "50",
    ]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.policy, "firstfit");
    const peak = out.peaks.find((p: { workload: string }) => p.workload === "heap");
    for (const arenas of [peak.arenas, out.rest]) {
      assert.deepEqual(arenas.map((a: { name: string }) => a.name), [
        "heap",
        "kmem_va",
        "kmem",
        "pid",
      ]);
      for (const a of arenas) {
        for (const k of ["largestFree", "freeSegments", "fragmentation", "footprint", "inUse"]) {
          assert.equal(typeof a[k], "number", `${a.name}.${k}`);
        }
      }
    }
    assert.ok(out.samples.length >= 10);
  },
);
