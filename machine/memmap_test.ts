import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryMap, MMIO_HOLE_BASE, MMIO_HOLE_END, presetMemoryMap } from "./memmap.ts";
import { MachineError } from "./errors.ts";

const KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

function shape(m: MemoryMap): [number, number, string][] {
  return m.regions.map((r) => [r.base, r.size, r.type]);
}

test("memmap: isa is 16 MiB with the first page and 640 KiB..1 MiB reserved", () => {
  const m = presetMemoryMap("isa");
  assert.deepEqual(shape(m), [
    [0, 4096, "reserved"],
    [4096, 640 * KiB - 4096, "ram"],
    [640 * KiB, 384 * KiB, "reserved"],
    [MiB, 15 * MiB, "ram"],
    [MMIO_HOLE_BASE, GiB, "mmio"],
  ]);
  assert.equal(m.ramEnd(), 16 * MiB);
  assert.equal(m.ramSize(), 16 * MiB - 4096 - 384 * KiB);
  m.check();
});

test("memmap: pc defaults to 512 MiB below the hole", () => {
  const m = presetMemoryMap();
  assert.deepEqual(shape(m).slice(3), [
    [MiB, 511 * MiB, "ram"],
    [3 * GiB, GiB, "mmio"],
  ]);
  assert.equal(m.find(0)?.type, "reserved");
  assert.equal(m.find(700 * KiB)?.name, "legacy video and ROM");
  assert.equal(m.find(512 * MiB), undefined);
  assert.equal(m.find(MMIO_HOLE_END - 1)?.type, "mmio");
});

test("memmap: pc memory past 3 GiB is remapped above 4 GiB; big is 64 GiB", () => {
  const m = presetMemoryMap("pc", { ramSize: 5 * GiB });
  assert.deepEqual(shape(m).slice(3), [
    [MiB, 3 * GiB - MiB, "ram"],
    [3 * GiB, GiB, "mmio"],
    [4 * GiB, 2 * GiB, "ram"],
  ]);
  const big = presetMemoryMap("big");
  assert.equal(big.ramEnd(), 65 * GiB);
  assert.equal(big.ramSize(), 64 * GiB - 4096 - 384 * KiB);
  assert.equal(big.format().length, 6);
  assert.match(big.format()[5]!, /^0x0000000100000000-0x000000103fffffff ram +high memory$/);
});

test("memmap: bad sizes and presets are refused naming the value", () => {
  assert.throws(
    () => presetMemoryMap("pc", { ramSize: 3 * MiB + 1 }),
    /multiple of 4096, got 0x300001/,
  );
  assert.throws(() => presetMemoryMap("pc", { ramSize: 0 }), /ramSize/);
  assert.throws(() => presetMemoryMap("pc", { ramSize: -4096 }), /ramSize/);
  assert.throws(() => presetMemoryMap("isa", { ramSize: 32 * MiB }), /ramSize/);
  assert.throws(() => presetMemoryMap("vax" as "pc"), /preset/);
  assert.throws(
    () => new MemoryMap([{ base: 0, size: 100, type: "ram", name: "x" }]),
    (e: unknown) => e instanceof MachineError && e.code === "EINVAL" && /size/.test(e.message),
  );
  assert.throws(
    () =>
      new MemoryMap([
        { base: 0, size: 8192, type: "ram", name: "a" },
        { base: 4096, size: 4096, type: "mmio", name: "b" },
      ]),
    /"b" at 0x1000 overlaps "a"/,
  );
  assert.throws(
    () => new MemoryMap([{ base: 0, size: 4096, type: "rom" as "ram", name: "x" }]),
    /type/,
  );
  const ok = new MemoryMap([
    { base: 8192, size: 4096, type: "ram", name: "" },
    { base: 0, size: 4096, type: "ram", name: "low" },
  ]);
  assert.deepEqual(ok.regions.map((r) => r.name), ["low", "ram"]);
});
