import { test } from "node:test";
import assert from "node:assert/strict";
import { type PhysicalAccess, Pmap, PTES_PER_LEAF, VM_PROT_READ } from "./pmap.ts";
import { describe, KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { refusal } from "./_test_util.ts";

/** Physical memory as one flat array, enough to see where bytes land. */
function flatRam(bytes: number): PhysicalAccess & { mem: Uint8Array } {
  const mem = new Uint8Array(bytes);
  return {
    mem,
    read: (pa, dst) => dst.set(mem.subarray(pa, pa + dst.length)),
    write: (pa, src) => mem.set(src, pa),
    fill: (pa, len, byte) => mem.fill(byte, pa, pa + len),
  };
}

const KVA = 0xffff_8000_0000;

test("pmap: enter, extract and remove a kernel page", () => {
  const pm = new Pmap(flatRam(1 << 16), KVA, 1 << 30);
  pm.enter(KVA + 0x3000, 0x5000);
  assert.equal(pm.extract(KVA + 0x3000), 0x5000);
  assert.equal(pm.extract(KVA + 0x3abc), 0x5abc);
  assert.equal(pm.extract(KVA + 0x4000), -1);
  assert.equal(pm.extract(0x1000), -1);
  assert.equal(pm.mappedPages, 1);
  pm.remove(KVA + 0x3000, 0x1000);
  assert.equal(pm.extract(KVA + 0x3000), -1);
  assert.equal(pm.mappedPages, 0);
  pm.check();
});

test("pmap: loads and stores through kernel virtual addresses cross page boundaries", () => {
  const ram = flatRam(1 << 16);
  const pm = new Pmap(ram, KVA, 1 << 30);
  // Virtually adjacent pages on physically scattered frames, in reverse order.
  pm.enter(KVA, 0x9000);
  pm.enter(KVA + 0x1000, 0x2000);
  const data = new Uint8Array(0x1800).map((_, i) => i * 7);
  pm.write(KVA + 0x800, data);
  assert.deepEqual(ram.mem.subarray(0x9800, 0xa000), data.subarray(0, 0x800));
  assert.deepEqual(ram.mem.subarray(0x2000, 0x3000), data.subarray(0x800));
  const back = new Uint8Array(0x1800);
  pm.read(KVA + 0x800, back);
  assert.deepEqual(back, data);
  pm.fill(KVA + 0xff0, 0x20, 0xee);
  assert.deepEqual([...ram.mem.subarray(0x9ff0, 0xa000)], new Array(16).fill(0xee));
  assert.deepEqual([...ram.mem.subarray(0x2000, 0x2010)], new Array(16).fill(0xee));
});

/** The code of the KernelError that `fn` throws (fails when it throws none). */
test("pmap: page faults and bad arguments change nothing", () => {
  const ram = flatRam(1 << 16);
  const pm = new Pmap(ram, KVA, 1 << 30);
  pm.enter(KVA, 0x1000);
  pm.enter(KVA + 0x2000, 0x3000, VM_PROT_READ);
  // A store straddling into an unmapped page moves no byte at all.
  assert.equal(refusal(() => pm.write(KVA + 0xff0, new Uint8Array(0x20).fill(1))), "EFAULT");
  assert.equal(ram.mem.reduce((a, b) => a + b, 0), 0);
  assert.equal(refusal(() => pm.write(KVA + 0x2000, new Uint8Array(1))), "EFAULT");
  assert.equal(refusal(() => pm.read(KVA + 0x1000, new Uint8Array(1))), "EFAULT");
  assert.equal(refusal(() => pm.enter(KVA, 0x4000)), "EEXIST");
  assert.equal(refusal(() => pm.enter(KVA + 0x5000, 0x4001)), "EINVAL");
  assert.equal(refusal(() => pm.enter(KVA - 0x1000, 0x4000)), "EINVAL");
  assert.equal(refusal(() => pm.enter(KVA + 0x5000, 0x4000, 0)), "EINVAL");
  assert.equal(refusal(() => pm.enter(KVA + 0x5000 + 0.5, 0x4000)), "EINVAL");
  // Removing a range with a hole in it removes nothing.
  assert.equal(refusal(() => pm.remove(KVA, 0x3000)), "EINVAL");
  assert.equal(pm.extract(KVA), 0x1000);
  assert.equal(pm.extract(KVA + 0x2000), 0x3000);
  assert.equal(pm.mappedPages, 2);
  pm.check();
});

test("pmap: random enters and removes agree with a map", () => {
  const rng = new Mulberry32(7);
  const pages = 4 * PTES_PER_LEAF;
  const pm = new Pmap(flatRam(4096), KVA, pages * 4096);
  const model = new Map<number, number>();
  for (let step = 0; step < 3000; step++) {
    const vpn = rng.below(pages);
    const va = KVA + vpn * 4096;
    if (model.has(vpn)) {
      pm.remove(va, 4096);
      model.delete(vpn);
    } else {
      const pfn = rng.below(1 << 30);
      pm.enter(va, pfn * 4096);
      model.set(vpn, pfn);
    }
    const probe = rng.below(pages);
    assert.equal(pm.extract(KVA + probe * 4096), model.has(probe) ? model.get(probe)! * 4096 : -1);
    pm.check();
  }
  assert.equal(pm.mappedPages, model.size);
});

test("pmap: extractPages walks a range as pmap_extract does page by page", () => {
  const rng = new Mulberry32(3);
  const pages = 4 * PTES_PER_LEAF;
  const pm = new Pmap(flatRam(4096), KVA, pages * 4096);
  // Mapped runs with holes between them, across leaf tables.
  for (let vpn = 0; vpn < pages;) {
    const run = 1 + rng.below(700);
    for (let i = 0; i < run && vpn < pages; i++, vpn++) {
      pm.enter(KVA + vpn * 4096, rng.below(1 << 30) * 4096);
    }
    vpn += rng.below(3);
  }
  const out = new Float64Array(1200);
  for (let step = 0; step < 400; step++) {
    const first = rng.below(pages + 8) - 4; // now and then outside the window
    const va = KVA + first * 4096 + (rng.below(2) ? 0 : rng.below(4096));
    const len = rng.below(8) === 0 ? rng.below(4096) : rng.below(1100 * 4096);
    out.fill(-7);
    const n = pm.extractPages(va, len, out);
    let want = 0;
    if (len > 0) {
      const span = Math.floor((va + len - 1) / 4096) - Math.floor(va / 4096) + 1;
      for (let p = 0; p < span; p++) {
        const pa = pm.extract(Math.floor(va / 4096) * 4096 + p * 4096);
        if (pa < 0) break;
        assert.equal(out[p], pa, `page ${p} of ${va}+${len}`);
        want++;
      }
    }
    assert.equal(n, want, `pages of ${va}+${len}`);
    assert.ok(out.subarray(n).every((x) => x === -7), "nothing written past the count");
    // extract at a byte inside a mapped page is the page plus the offset.
    if (n > 0) assert.equal(pm.extract(va), out[0]! + va % 4096);
  }
  // A range that runs off the end of the window stops there.
  const end = KVA + pages * 4096;
  assert.equal(pm.extractPages(end - 4096, 3 * 4096, out), pm.extract(end - 4096) < 0 ? 0 : 1);
  assert.equal(pm.extractPages(end, 4096, out), 0);
});

test("pmap: extractPages refuses a bad length or a short array, writing nothing", () => {
  const pm = new Pmap(flatRam(4096), KVA, 1 << 30);
  for (let i = 0; i < 4; i++) pm.enter(KVA + (PTES_PER_LEAF - 2 + i) * 4096, (9 + i) * 4096);
  const va = KVA + (PTES_PER_LEAF - 2) * 4096;
  const out = new Float64Array(4);
  assert.equal(pm.extractPages(va + 100, 4 * 4096 - 100, out), 4); // across two leaf tables
  assert.deepEqual([...out], [9 * 4096, 10 * 4096, 11 * 4096, 12 * 4096]);
  out.fill(-1);
  for (const len of [-1, 1.5, NaN, 2 ** 53]) {
    assert.equal(refusal(() => pm.extractPages(va, len, out)), "EINVAL");
  }
  assert.equal(refusal(() => pm.extractPages(va + 1, 4 * 4096, out)), "EINVAL"); // 5 pages
  assert.equal(refusal(() => pm.extractPages(va, 4096, [0] as unknown as Float64Array)), "EINVAL");
  assert.ok(out.every((x) => x === -1));
  assert.equal(pm.extractPages(va, 0, out), 0);
  assert.equal(refusal(() => pm.extractPages(va + 0.5, 4096, out)), "EINVAL");
  assert.equal(pm.extractPages(KVA - 4096, 8192, out), 0);
  assert.ok(out.every((x) => x === -1));
  pm.check();
});

test("pmap: arguments of the wrong type are refused with EINVAL naming them, changing nothing", () => {
  const ram = flatRam(1 << 16);
  const pm = new Pmap(ram, KVA, 1 << 30);
  pm.enter(KVA, 0x1000);
  pm.enter(KVA + 0x1000, 0x2000, VM_PROT_READ);
  const hostile: unknown[] = [
    BigInt(KVA),
    String(KVA),
    true,
    null,
    undefined,
    NaN,
    KVA + 0.5,
    Symbol("va"),
    { valueOf: () => KVA },
  ];
  const out = new Float64Array(4).fill(-1);
  const calls: [string, (v: never) => unknown][] = [
    ["va", (v) => pm.extract(v)],
    ["va", (v) => pm.extractPages(v, 4096, out)],
    ["va", (v) => pm.enter(v, 0x3000)],
    ["pa", (v) => pm.enter(KVA + 0x2000, v)],
    ["prot", (v) => pm.enter(KVA + 0x2000, 0x3000, v)],
    ["va", (v) => pm.remove(v, 0x1000)],
    ["len", (v) => pm.remove(KVA, v)],
    ["va", (v) => pm.read(v, new Uint8Array(4))],
    ["dst", (v) => pm.read(KVA, v)],
    ["va", (v) => pm.write(v, new Uint8Array(4))],
    ["src", (v) => pm.write(KVA, v)],
    ["len", (v) => pm.fill(KVA, v, 0)],
    ["byte", (v) => pm.fill(KVA, 4, v)],
  ];
  for (const v of hostile) {
    for (const [arg, call] of calls) {
      if (arg === "prot" && v === undefined) continue; // the default protection
      const what = `${arg} ${describe(v)} in ${call}`;
      assert.throws(
        () => call(v as never),
        (e: unknown) =>
          e instanceof KernelError && e.code === "EINVAL" && e.message.includes(arg) &&
          e.message.includes(describe(v)),
        what,
      );
    }
  }
  assert.ok(out.every((x) => x === -1));
  assert.ok(ram.mem.every((b) => b === 0));
  assert.equal(pm.mappedPages, 2);
  assert.equal(pm.extract(KVA + 0x1004), 0x2004);
  // An integer outside the window is an address no page maps, not a refusal.
  assert.equal(pm.extract(KVA - 4096), -1);
  assert.equal(pm.extract(-1), -1);
  pm.check();
});
