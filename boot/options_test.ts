import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBootArgs, parseSize, UsageError } from "./options.ts";

test("options: defaults boot the pc machine with every device and every workload", () => {
  const o = parseBootArgs([]);
  assert.equal(o.machine, "pc");
  assert.equal(o.memory, undefined);
  assert.equal(o.workload, "all");
  assert.equal(o.seed, 1);
  assert.deepEqual(o.devices, ["isa", "nic", "nvme", "dma30"]);
  assert.equal(o.json || o.quiet || o.help || o.ignoreTags, false);
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
