import { test } from "node:test";
import assert from "node:assert/strict";
import { benchCmd } from "./_test_util.ts";

test("bench: --filter matches benchmark names; instant-fit is in the policy group", {
  timeout: 120_000,
}, () => {
  const r = benchCmd("bench/vmem.ts", ["--filter", "^vmem-churn(-bestfit)?$", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const { layout, benchmarks } = JSON.parse(r.stdout);
  assert.deepEqual(benchmarks.map((b: { alias: string }) => b.alias), [
    "vmem-churn",
    "vmem-churn-bestfit",
  ]);
  const [churn, best] = benchmarks;
  assert.equal(churn.group, best.group, "vmem-churn and the other policies share a group");
  assert.deepEqual(layout[churn.group].types, ["s"], "a summary group: ratios in one run");
  assert.ok(churn.runs[0].stats.samples.length > 0, "--json is mitata's report, samples included");
});

test("bench: a filter that matches nothing, or is no regular expression, is exit status 2", {
  timeout: 120_000,
}, () => {
  for (const file of ["bench/dma.ts", "bench/boot.ts", "bench/vmem.ts", "bench/pglist.ts"]) {
    const none = benchCmd(file, ["--filter", "^no-such-benchmark$"]);
    assert.equal(none.status, 2, `${file}: ${none.stderr}`);
    assert.match(none.stderr, /^--filter \/\^no-such-benchmark\$\/: no benchmark name matches\n$/);
  }
  const bad = benchCmd("bench/boot.ts", ["--filter", "("]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^--filter: not a regular expression/);
});
