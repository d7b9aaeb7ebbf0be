import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBootArgs, parseSize, UsageError } from "./options.ts";
import { POLICIES } from "./boot_options.ts";

test("options: defaults boot the pc machine with every device and every workload", () => {
  const o = parseBootArgs([]);
  assert.equal(o.machine, "pc");
  assert.equal(o.memory, undefined);
  assert.equal(o.workload, "all");
  assert.equal(o.seed, 1);
  assert.deepEqual(o.devices, ["isa", "nic", "nvme", "dma30"]);
  assert.equal(o.json || o.quiet || o.help || o.ignoreTags || o.dmaDebug, false);
  assert.deepEqual(o.driverBugs, []);
  assert.equal(o.bouncePages, undefined);
});

test("options: the DMA flags: --dma-debug, --driver-bugs, --bounce-pages", () => {
  const o = parseBootArgs([
    "--dma-debug",
    "--driver-bugs",
    "skip-sync,early-unload,skip-sync",
    "--bounce-pages",
    "128",
    "--ignore-tags",
  ]);
  assert.deepEqual(
    [o.dmaDebug, o.driverBugs, o.bouncePages, o.ignoreTags],
    [true, ["skip-sync", "early-unload"], 128, true],
  );
  assert.deepEqual(parseBootArgs(["--driver-bugs", "none"]).driverBugs, []);
  assert.equal(parseBootArgs(["--bounce-pages", "0"]).bouncePages, 0);
  for (
    const [args, re] of [
      [
        ["--driver-bugs", "typo"],
        /--driver-bugs: unknown value "typo" \(one of skip-sync, early-unload\)/,
      ],
      [["--bounce-pages", "-1"], /bounce-pages/],
      [["--bounce-pages", "lots"], /--bounce-pages: expected a whole number from 0 to 65536/],
      [["--bounce-pages", "65537"], /--bounce-pages/],
    ] as [string[], RegExp][]
  ) {
    assert.throws(() => parseBootArgs(args), (e) => e instanceof UsageError && re.test(e.message));
  }
});

test("options: flags and values are parsed", () => {
  const o = parseBootArgs([
    "-m",
    "pc",
    "--memory",
    "2G",
    "-w",
    "heap",
    "-n",
    "500",
    "--seed=9",
    "--devices",
    "nvme,isa,nvme",
    "--json",
    "-q",
    "--record-vmem",
    "v.jsonl",
    "--record-pglist",
    "p.jsonl",
    "--svg",
    "m.svg",
  ]);
  assert.equal(o.memory, 2 ** 31);
  assert.equal(o.workload, "heap");
  assert.equal(o.ops, 500);
  assert.equal(o.seed, 9);
  assert.deepEqual(o.devices, ["nvme", "isa"]);
  assert.equal(o.recordVmem, "v.jsonl");
  assert.equal(o.recordPglist, "p.jsonl");
  assert.equal(o.svg, "m.svg");
  assert.deepEqual(parseBootArgs(["--devices", "none"]).devices, []);
  assert.equal(parseBootArgs(["--memory", "16T"]).memory, 16 * 2 ** 40);
  assert.throws(() => parseBootArgs(["--memory", "65T"]), /from 32M to 64T/);
  assert.equal(parseBootArgs([]).physseg, "bsearch");
  assert.equal(parseBootArgs(["--physseg", "bigfirst"]).physseg, "bigfirst");
  assert.throws(() => parseBootArgs(["--physseg", "biggest"]), /--physseg.*"biggest"/);
});

test("options: --policy names the heap arenas' policy; --sample a whole number", () => {
  // No --policy: each flavor's own default (instant-fit for illumos, best-fit for FreeBSD).
  assert.equal(parseBootArgs([]).policy, undefined);
  assert.equal(parseBootArgs([]).sample, undefined);
  for (const p of POLICIES) assert.equal(parseBootArgs(["--policy", p]).policy, p);
  assert.deepEqual(POLICIES, ["instantfit", "bestfit", "firstfit", "nextfit"]);
  assert.equal(parseBootArgs(["--sample", "250"]).sample, 250);
  assert.equal(parseBootArgs(["--vmem", "freebsd", "--policy", "firstfit"]).policy, "firstfit");
  for (const p of ["instantfit", "nextfit"]) {
    assert.throws(
      () => parseBootArgs(["--vmem", "freebsd", "--policy", p]),
      (e) => e instanceof UsageError && /--policy \(with --vmem freebsd\)/.test(e.message),
    );
  }
  // A value that only looks like a flag is still taken for one.
  assert.throws(() => parseBootArgs(["--svg", "-q"]), UsageError);
});

test("options: sizes take binary units", () => {
  assert.equal(parseSize("--memory", "4096"), 4096);
  assert.equal(parseSize("--memory", "512M"), 512 * 2 ** 20);
  assert.equal(parseSize("--memory", "64GiB"), 64 * 2 ** 30);
  assert.equal(parseSize("--memory", "1t"), 2 ** 40);
  assert.throws(() => parseSize("--memory", "lots"), UsageError);
  assert.throws(() => parseSize("--memory", "0"), UsageError);
});

test("options: each bad flag or value is one line naming it", () => {
  const bad: [string[], RegExp][] = [
    [["--frobnicate"], /frobnicate/],
    [["-m", "vax"], /--machine: unknown value "vax"/],
    [["-w", "nap"], /--workload: unknown value "nap"/],
    [["--memory", "3"], /--memory: must be whole MiB/],
    [["--memory", "1G", "-m", "big"], /fixed size/],
    [["--ops", "0"], /--ops: expected a whole number/],
    [["--ops", "1e3"], /--ops/],
    [["--seed", "-1"], /--seed/],
    [["--devices", "nic,gpu"], /--devices: unknown value "gpu"/],
    [["--svg", ""], /--svg: expected a file name/],
    [["-n", "-5"], /^--ops: expected a whole number from 1 to 10000000, got "-5"$/],
    [["--ops", "-0.5"], /^--ops: expected a whole number .* got "-0\.5"$/],
    [["--memory", "-1G"], /^--memory: not a size: "-1G"/],
    [["-s", "-3"], /^--seed: expected a whole number from 0 to 4294967295, got "-3"$/],
    [["--policy", "worstfit"], /^--policy: unknown value "worstfit" \(one of instantfit, bestfit/],
    [["--sample", "0"], /^--sample: expected a whole number from 1 to 10000000, got "0"$/],
    [["--sample", "-2"], /^--sample: expected a whole number .* got "-2"$/],
    [["stray"], /stray/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseBootArgs(args), (e) => {
      assert.ok(e instanceof UsageError, `${args}: ${e}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), `${args}: message spans lines`);
      return true;
    });
  }
});
