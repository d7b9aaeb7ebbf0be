import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { nativeNsPerOp, printNativeRatios } from "./_native.ts";

const root = new URL("..", import.meta.url).pathname;

/**
 * A directory holding a stand-in reference: 50 ns per op for `--bench NAME`,
 * 40 when it is also told `--policy firstfit` (so a test sees the arguments).
 */
function fakeReference(program: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-native-"));
  writeFileSync(
    join(dir, program),
    '#!/bin/sh\nns=50\n[ "$3 $4" = "--policy firstfit" ] && ns=40\necho "$2 ns_per_op=$ns ops=1000"\n',
    { mode: 0o755 },
  );
  return dir;
}

test("native: each workload runs under its reference name with its arguments, and its ratio is printed", () => {
  const dir = fakeReference("ref");
  try {
    assert.equal(nativeNsPerOp(join(dir, "ref"), "vmem-churn"), 50);
    assert.equal(nativeNsPerOp(join(dir, "nothing"), "vmem-churn"), null);
    const lines: string[] = [];
    printNativeRatios(
      dir,
      "ref",
      ["vmem-churn", {
        name: "vmem-churn-freebsd",
        bench: "vmem-churn",
        args: ["--policy", "firstfit"],
      }],
      new Map([["vmem-churn", 75], ["vmem-churn-freebsd", 100], ["untimed", 1]]),
      (line) => lines.push(line),
    );
    assert.equal(lines.length, 4, lines.join("\n"));
    assert.match(lines[2]!, /^vmem-churn +75\.0 +50\.0 +1\.50$/);
    assert.match(lines[3]!, /^vmem-churn-freebsd +100\.0 +40\.0 +2\.50$/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("native: without a directory nothing runs; a directory without the program is said and skipped", () => {
  const lines: string[] = [];
  printNativeRatios(
    undefined,
    "ref",
    ["vmem-churn"],
    new Map([["vmem-churn", 1]]),
    (l) => lines.push(l),
  );
  assert.equal(lines.length, 0, "no directory, no run");
  const dir = mkdtempSync(join(tmpdir(), "vmemu-native-"));
  try {
    printNativeRatios(
      dir,
      "ref",
      ["vmem-churn"],
      new Map([["vmem-churn", 1]]),
      (l) => lines.push(l),
    );
    assert.deepEqual(lines, [`native: no ref in ${dir}; comparison skipped`]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("bench/vmem.ts times FreeBSD's arena and hands the FreeBSD reference its policy", {
  timeout: 120_000,
}, () => {
  const dir = fakeReference("vmem-oracle-nodebug");
  try {
    const file = "bench/vmem.ts";
    const args = ["--filter", "^vmem-frag-1k-freebsd$", "--json", "--native-freebsd", dir];
    const argv = "Deno" in globalThis ? ["run", "-A", file, ...args] : [file, ...args];
    const r = spawnSync(process.execPath, argv, {
      cwd: root,
      encoding: "utf8",
      timeout: 120_000,
      maxBuffer: 1 << 28,
    });
    assert.equal(r.status, 0, r.stderr);
    const { benchmarks } = JSON.parse(r.stdout);
    assert.deepEqual(benchmarks.map((b: { alias: string }) => b.alias), ["vmem-frag-1k-freebsd"]);
    assert.match(r.stderr, /^vmem-frag-1k-freebsd +[0-9.]+ +40\.0 +[0-9.]+$/m);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
