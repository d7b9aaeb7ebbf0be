import { test } from "node:test";
import assert from "node:assert/strict";
import { BUS_DMASYNC_POSTREAD, BUS_DMASYNC_PREREAD, BUS_DMASYNC_PREWRITE } from "./bus_dma.ts";
import { DmaDebug, VIOLATIONS_LISTED } from "./dma_debug.ts";
import { DMA_24BIT, DmaPort } from "../machine/mod.ts";
import { dmaWorld } from "./_dma_test_util.ts";

const PS = 4096;

/** bus_dma with debugging over 32 MiB, a 24-bit device port, and the CPU's accessors. */
function world() {
  const { ram, pmap, dma, backend, buffer: pageBuffer } = dmaWorld();
  const debug = new DmaDebug(backend);
  dma.debug = debug;
  const port = new DmaPort(ram, "dev0", { maxAddress: DMA_24BIT });
  debug.watch(port);
  const tag = dma.tagForDevice({ name: "dev0", dma: port.limits }, { maxTransfer: 4 * PS });
  const map = dma.createMap(tag, 4 * PS, 4);
  /** A kernel buffer of `pages` frames from `first` (above 16 MiB: they bounce). */
  const buffer = (first: number, pages: number) =>
    pageBuffer(Array.from({ length: pages }, (_, i) => first + i));
  const cpu = {
    write(at: number, src: Uint8Array) {
      pmap.write(at, src);
      debug.cpu("write", at, src.length);
    },
    read(at: number, dst: Uint8Array) {
      pmap.read(at, dst);
      debug.cpu("read", at, dst.length);
    },
  };
  const devRead = () => port.readSg(map.segs, map.nsegs, new Uint8Array(map.mapsize));
  const devWrite = () => port.writeSg(map.segs, map.nsegs, new Uint8Array(map.mapsize).fill(9));
  return { ram, dma, debug, port, tag, map, buffer, cpu, devRead, devWrite };
}

test("dma-debug: a driver that syncs as it should shows no violation", () => {
  const w = world();
  const va = w.buffer(5000, 2);
  for (let round = 0; round < 3; round++) {
    w.cpu.write(va, new Uint8Array(2 * PS).fill(round));
    w.dma.load(w.map, va, 2 * PS);
    w.dma.sync(w.map, BUS_DMASYNC_PREWRITE);
    assert.equal(w.devRead(), 2 * PS);
    w.dma.unload(w.map);
    w.dma.load(w.map, va, 2 * PS);
    w.dma.sync(w.map, BUS_DMASYNC_PREREAD);
    assert.equal(w.devWrite(), 2 * PS);
    w.dma.sync(w.map, BUS_DMASYNC_POSTREAD);
    w.cpu.read(va, new Uint8Array(2 * PS));
    w.dma.unload(w.map);
  }
  assert.deepEqual(w.debug.summary(), { violations: 0, list: [] });
});

test("dma-debug: the device reads what the CPU wrote without a PREWRITE sync", () => {
  const w = world();
  const va = w.buffer(5000, 1);
  w.cpu.write(va, new Uint8Array(PS).fill(1));
  w.dma.load(w.map, va, PS);
  const seg = w.map.segAddr(0);
  w.devRead(); // never synced since the load
  w.dma.sync(w.map, BUS_DMASYNC_PREWRITE);
  w.cpu.write(va + 10, new Uint8Array(4)); // written again after the sync
  w.devRead();
  w.dma.unload(w.map);
  const [v] = w.debug.list;
  assert.equal(w.debug.violations, 1, "once per load");
  assert.equal(v!.kind, "no-prewrite");
  assert.equal(v!.device, "dev0");
  assert.equal(v!.map, w.map.name);
  assert.equal(v!.addr, seg, "the device's address: the bounce page");
  assert.match(
    v!.message,
    /dev0 read 0x[0-9a-f]+ of map dev0\/map\d+, which the CPU wrote without a PREWRITE sync since/,
  );
  // After a fresh load, a sync and a write the CPU makes later are caught too.
  w.dma.load(w.map, va, PS);
  w.dma.sync(w.map, BUS_DMASYNC_PREWRITE);
  w.cpu.write(va, new Uint8Array(1));
  w.devRead();
  w.dma.unload(w.map);
  assert.equal(w.debug.violations, 2);
});

test("dma-debug: the CPU reads what the device wrote before a POSTREAD sync", () => {
  const w = world();
  const va = w.buffer(5000, 1);
  w.dma.load(w.map, va, PS);
  w.dma.sync(w.map, BUS_DMASYNC_PREREAD);
  w.devWrite();
  w.cpu.read(va + 100, new Uint8Array(8));
  w.dma.unload(w.map);
  assert.deepEqual(w.debug.list.map((v) => v.kind), ["no-postread"]);
  assert.match(
    w.debug.list[0]!.message,
    /the CPU read 0x[0-9a-f]+ of map dev0\/map\d+, which dev0 wrote, before a POSTREAD sync/,
  );
  assert.equal(
    w.debug.list[0]!.addr,
    5000 * PS + 100,
    "the CPU's address: the buffer, not the bounce page",
  );
});

test("dma-debug: unload in flight, double unload, load of a loaded map, sync of an unloaded map", () => {
  const w = world();
  const va = w.buffer(5000, 1);
  w.dma.load(w.map, va, PS);
  w.dma.sync(w.map, BUS_DMASYNC_PREWRITE);
  w.port.inFlight = 1; // the device has queued work on this transfer
  assert.throws(() => w.dma.load(w.map, va, PS), /already loaded/);
  w.dma.unload(w.map);
  w.port.inFlight = 0;
  assert.throws(() => w.dma.unload(w.map), /not loaded/);
  assert.throws(() => w.dma.sync(w.map, BUS_DMASYNC_PREWRITE), /not loaded/);
  assert.deepEqual(w.debug.list.map((v) => v.kind), [
    "load-loaded",
    "unload-in-flight",
    "double-unload",
    "sync-unloaded",
  ]);
  assert.match(
    w.debug.list[1]!.message,
    /map dev0\/map\d+ unloaded while dev0 has 1 transfer\(s\) in flight/,
  );
});

test("dma-debug: a device transfer no loaded map covers, and leaks at shutdown", () => {
  const w = world();
  assert.equal(w.port.write(0x30_0000, new Uint8Array(16)), true);
  const mem = w.dma.dmamemAlloc(w.tag, PS);
  w.dma.shutdown();
  assert.deepEqual(w.debug.list.map((v) => v.kind), ["outside-maps", "leak", "leak"]);
  assert.match(
    w.debug.list[0]!.message,
    /dev0 wrote \[0x300000, \+16\), which no loaded map of it covers/,
  );
  assert.match(w.debug.list[1]!.message, /map dev0\/map\d+ was never destroyed/);
  assert.match(w.debug.list[2]!.message, /4096 bytes of DMA memory of tag dev0 were never freed/);
  assert.equal(w.debug.list[2]!.addr, mem.segs[0]![0]);
  assert.equal(w.port.monitor, null, "shutdown stops watching");
});

test("dma-debug: every violation is counted; the first ones are listed", () => {
  const w = world();
  for (let i = 0; i < VIOLATIONS_LISTED + 10; i++) {
    w.port.write(0x30_0000 + 16 * i, new Uint8Array(16));
  }
  assert.equal(w.debug.violations, VIOLATIONS_LISTED + 10);
  assert.equal(w.debug.list.length, VIOLATIONS_LISTED);
});
