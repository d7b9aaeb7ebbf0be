import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchCmd } from "./_test_util.ts";
import { type MitataRun, NativeComparison, nativeNsPerOp } from "./_native.ts";

/**
 * A directory holding a stand-in reference: for `--bench NAME`, 50 ns per
 * op on its first run of NAME and 45 on later ones, 10 less when it is
 * also told `--policy firstfit` (so a test sees the arguments); it fails
 * on `--bench broken`.
 */
function fakeReference(program: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vmemu-native-"));
  writeFileSync(
    join(dir, program),
    `#!/bin/sh
[ "$2" = broken ] && exit 1
seen="${dir}/$2$3"
ns=50; [ -e "$seen" ] && ns=45; : > "$seen"
[ "$3 $4" = "--policy firstfit" ] && ns=$((ns - 10))
echo "$2 ns_per_op=$ns ops=1000"
`,
    { mode: 0o755 },
  );
  return dir;
}

/** A mitata result holding `runs` (name, mean, median). */
function mitataRun(...runs: [string, number, number][]): MitataRun {
  return {
    benchmarks: runs.map(([name, avg, p50]) => ({ runs: [{ name, stats: { avg, p50 } }] })),
  };
}

test("native: nativeNsPerOp reads the reference's figure, null when there is none", () => {
  const dir = fakeReference("ref");
  try {
    assert.equal(nativeNsPerOp(join(dir, "ref"), "vmem-churn"), 50);
    assert.equal(nativeNsPerOp(join(dir, "ref"), "vmem-churn", ["--policy", "firstfit"]), 40);
    assert.equal(nativeNsPerOp(join(dir, "ref"), "broken"), null);
    assert.equal(nativeNsPerOp(join(dir, "nothing"), "vmem-churn"), null);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("native: each workload runs before and after, under its reference name and arguments; the faster counts", () => {
  const dir = fakeReference("ref");
  try {
    const cmp = new NativeComparison(dir, "ref", [
      "vmem-churn",
      { name: "vmem-churn-freebsd", bench: "vmem-churn", args: ["--policy", "firstfit"] },
      "broken",
      "not-timed",
    ]);
    assert.equal(cmp.path, join(dir, "ref"));
    cmp.run("vmem-churn"); // 50: the first run
    cmp.run("other"); // no workload of the reference: nothing runs
    const lines: string[] = [];
    cmp.report(
      mitataRun(
        ["vmem-churn", 90, 72],
        ["vmem-churn-freebsd", 70, 35],
        ["broken", 1, 1],
        ["other", 1, 1],
      ),
      (line) => lines.push(line),
    );
    assert.equal(lines.length, 5, lines.join("\n"));
    assert.match(
      lines[0]!,
      /^native: .*ref \(the faster of a run before each benchmark and one after all\)$/,
    );
    assert.match(lines[1]!, /^workload +TS mean +median +native +mean\/native +median\/native$/);
    // After the run, 45: faster than the 50 before.
    assert.match(lines[2]!, /^vmem-churn +90\.0 +72\.0 +45\.0 +2\.00 +1\.60$/);
    // Run after only, with its arguments: 40.
    assert.match(lines[3]!, /^vmem-churn-freebsd +70\.0 +35\.0 +40\.0 +1\.75 +0\.88$/);
    assert.match(lines[4]!, /^broken +1\.0 +1\.0 +- +failed +failed$/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("native: without a directory nothing runs; a directory without the program is said and skipped", () => {
  const lines: string[] = [];
  const none = new NativeComparison(undefined, "ref", ["vmem-churn"]);
  assert.equal(none.path, null);
  none.run("vmem-churn");
  none.report(mitataRun(["vmem-churn", 1, 1]), (l) => lines.push(l));
  assert.equal(lines.length, 0, "no directory, no run");
  const dir = mkdtempSync(join(tmpdir(), "vmemu-native-"));
  try {
    const missing = new NativeComparison(dir, "ref", ["vmem-churn"]);
    missing.run("vmem-churn");
    missing.report(mitataRun(["vmem-churn", 1, 1]), (l) => lines.push(l));
    assert.deepEqual(lines, [`native: no ref in ${dir}; comparison skipped`]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

/**
 * Runs bench file `file` with `args`, `--json` and a stand-in reference
 * `program` given by `option`, and returns the names it timed and its
 * standard error (where the comparison goes beside JSON).
 */
function benchWithReference(
  file: string,
  args: readonly string[],
  option: string,
  program: string,
): { timed: string[]; stderr: string } {
  const dir = fakeReference(program);
  try {
    const r = benchCmd(file, [...args, "--json", option, dir]);
    assert.equal(r.status, 0, r.stderr);
    const { benchmarks } = JSON.parse(r.stdout);
    return { timed: benchmarks.map((b: { alias: string }) => b.alias), stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true });
  }
}

test("bench/vmem.ts times FreeBSD's arena and hands the FreeBSD reference its policy", {
  timeout: 120_000,
}, () => {
  const { timed, stderr } = benchWithReference(
    "bench/vmem.ts",
    ["--filter", "^vmem-frag-1k-freebsd$"],
    "--native-freebsd",
    "vmem-oracle-nodebug",
  );
  assert.deepEqual(timed, ["vmem-frag-1k-freebsd"]);
  // 35: the reference ran before the benchmark (40) and again after it.
  assert.match(stderr, /^vmem-frag-1k-freebsd +[0-9.]+ +[0-9.]+ +35\.0 +[0-9.]+ +[0-9.]+$/m);
});

test("bench/pglist.ts runs NetBSD's reference before and after its workload", {
  timeout: 120_000,
}, () => {
  const { timed, stderr } = benchWithReference(
    "bench/pglist.ts",
    ["--filter", "^pglist-simple$"],
    "--native",
    "pglist-oracle",
  );
  assert.deepEqual(timed, ["pglist-simple"]);
  assert.match(stderr, /^pglist-simple +[0-9.]+ +[0-9.]+ +45\.0 +[0-9.]+ +[0-9.]+$/m);
});
