/**
 * The DMA workload: every attached driver moves data through bus_dma and
 * the data is checked end to end.
 *
 * Each operation picks one of the attached drivers (mulberry32 with the
 * run's seed) and does what its device is for, on buffers of random sizes
 * at random offsets:
 *
 * - ISA: a buffer of random bytes is played to the device and recorded back
 *   into another (both kmem buffers, or both DMA memory from the driver),
 *   the copy compared with the original; or a buffer is filled with the
 *   device's pattern. The driver checks the device's checksum too.
 * - NIC: a frame of random bytes (14 to 9018 bytes) is sent from a kmem
 *   buffer, looped back and copied into another kmem buffer, which must
 *   equal it. Every 16th frame is longer than the card's 8 segments of
 *   4 KiB can carry: bus_dma must refuse it with EFBIG (with tags ignored,
 *   the card gets it and faults).
 * - With tags ignored, an ISA transfer of a kernel buffer whose pages are
 *   not contiguous cannot be the channel's one segment: bus_dma refuses it
 *   with EFBIG, which is counted, not an error.
 * - NVMe: random bytes are written to a random run of blocks from a kmem
 *   buffer at a random 4-byte-aligned offset, read back into another and
 *   compared.
 * - dma30: a frame of random geometry is captured into DMA memory (the
 *   driver checks every pixel) and scanned out (the driver checks the
 *   device's hash).
 *
 * Devices complete later (on the machine's clock) and drivers wait for
 * them: each operation is awaited before the next starts. A DMA fault is
 * counted, not listed as an error: the run judges every device's faults
 * from its driver's accounting (a fault must catch a transfer beyond the
 * device's limits). A data mismatch, a device error or an unexpected
 * refusal is an error. The report counts operations and
 * outcomes, and per device the transfers, bytes, bounced bytes and faults
 * of this workload. Every buffer is freed before the operation ends, and
 * the driver's invariants are checked after it.
 *
 * @module
 */

import type { Kernel } from "./kernel.ts";
import type { Workload } from "./workload.ts";
import { Mulberry32 } from "../mm/random.ts";
import { KernelError } from "../mm/errors.ts";
import {
  CaptureDriver,
  type DeviceDriver,
  type DriverStats,
  type IsaCommand,
  IsaDriver,
  NIC_MTU,
  NicDriver,
  NVME_MAX_TRANSFER,
  NvmeDriver,
  type TransferResult,
} from "../devices/mod.ts";

/** Default operations of the workload. */
export const DMA_DEFAULT_OPS = 1000;

/** Blocks of the disk the NVMe operations use (the image stays small on the host). */
const NVME_REGION = 8 * 2 ** 20;
/** Most errors listed one by one; the rest are counted. */
const ERRORS_LISTED = 20;

/** State shared by one run's operations. */
interface Run {
  k: Kernel;
  rng: Mulberry32;
  counts: Record<string, number>;
  errors: string[];
  listed: Set<string>;
  /** kmem buffers of the current operation: address, size pairs. */
  held: number[];
  a: Uint8Array;
  b: Uint8Array;
}

function count(r: Run, key: string, n = 1): void {
  r.counts[key] = (r.counts[key] ?? 0) + n;
}

function fail(r: Run, what: string): void {
  count(r, "errors");
  if (r.errors.length < ERRORS_LISTED) r.errors.push(what);
  else if (r.errors.length === ERRORS_LISTED) r.errors.push("further errors not listed");
}

/**
 * Counts an outcome; true when the data moved and checked. A fault is only
 * counted; a mismatch or error the driver found is listed the first time
 * for each device (the driver counts them all, and the run reports them).
 */
function outcome(
  r: Run,
  d: DeviceDriver,
  what: string,
  res: TransferResult | "refused",
): boolean {
  if (res === "ok") return true;
  if (res === "refused") return false;
  if (res === "fault") {
    count(r, "faults");
    return false;
  }
  const key = res === "mismatch" ? "mismatches" : "deviceErrors";
  if (!r.listed.has(`${d.name} ${res}`)) {
    r.listed.add(`${d.name} ${res}`);
    fail(r, `${d.name}: ${what}: ${res} (further ones are counted, not listed)`);
  } else count(r, "errors");
  count(r, key);
  return false;
}

/** Writes `len` random bytes at kernel address `va`. */
function randomFill(r: Run, va: number, len: number): void {
  const buf = r.a.subarray(0, len);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const w = r.rng.next();
    buf[i] = w;
    buf[i + 1] = w >>> 8;
    buf[i + 2] = w >>> 16;
    buf[i + 3] = w >>> 24;
  }
  for (; i < len; i++) buf[i] = r.rng.next();
  r.k.pmap.write(va, buf);
}

/** True when the `len` bytes at `va` and `vb` are the same. */
function same(r: Run, va: number, vb: number, len: number): boolean {
  const x = r.a.subarray(0, len), y = r.b.subarray(0, len);
  r.k.pmap.read(va, x);
  r.k.pmap.read(vb, y);
  for (let i = 0; i < len; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * kmem_alloc for the current operation (freed when it ends, whatever
 * happens); a failure is an error and gives 0.
 */
function alloc(r: Run, size: number): number {
  const va = r.k.kmem.alloc(size);
  if (va === 0) fail(r, `kmem_alloc(${size}) failed with ${r.k.uvm.free} pages free`);
  else r.held.push(va, size);
  return va;
}

/** Frees the current operation's kmem buffers. */
function release(r: Run): void {
  for (let i = 0; i < r.held.length; i += 2) r.k.kmem.free(r.held[i]!, r.held[i + 1]!);
  r.held.length = 0;
}

/** A transfer length: mostly short, sometimes up to `max`. */
function length(rng: Mulberry32, max: number): number {
  return rng.below(4) === 0 ? 1 + rng.below(max) : 1 + rng.below(Math.min(max, 4096));
}

async function isaOp(r: Run, d: IsaDriver): Promise<void> {
  const rng = r.rng, k = r.k;
  const len = length(rng, 65536);
  const kind = rng.below(8);
  if (kind === 0) {
    const off = rng.below(64), pattern = rng.below(256);
    const va = alloc(r, off + len);
    if (va === 0) return;
    count(r, "isaFills");
    if (outcome(r, d, "isa fill", await isaTransfer(r, d, "fill", va + off, len, pattern))) {
      const got = r.a.subarray(0, len);
      k.pmap.read(va + off, got);
      for (let i = 0; i < len; i++) {
        if (got[i] !== ((pattern + i) & 0xff)) {
          fail(r, `isa fill of ${len} bytes: byte ${i} is ${got[i]}`);
          break;
        }
      }
    }
    return;
  }
  if (kind < 3) {
    // DMA memory the device reaches: no bounce.
    const src = d.allocBuffer(len);
    try {
      const dst = d.allocBuffer(len);
      try {
        randomFill(r, src.kva, len);
        count(r, "isaPlays");
        if (outcome(r, d, "isa play (DMA memory)", await d.transferMemory("play", src, len))) {
          count(r, "isaRecords");
          if (
            outcome(r, d, "isa record (DMA memory)", await d.transferMemory("record", dst, len))
          ) {
            if (!same(r, src.kva, dst.kva, len)) fail(r, `isa: ${len} bytes recorded differ`);
          }
        }
      } finally {
        d.freeBuffer(dst);
      }
    } finally {
      d.freeBuffer(src);
    }
    return;
  }
  const offA = rng.below(64), offB = rng.below(64);
  const a = alloc(r, offA + len);
  const b = alloc(r, offB + len);
  if (a !== 0 && b !== 0) {
    randomFill(r, a + offA, len);
    count(r, "isaPlays");
    if (outcome(r, d, "isa play", await isaTransfer(r, d, "play", a + offA, len))) {
      count(r, "isaRecords");
      if (outcome(r, d, "isa record", await isaTransfer(r, d, "record", b + offB, len))) {
        if (!same(r, a + offA, b + offB, len)) fail(r, `isa: ${len} bytes recorded differ`);
      }
    }
  }
}

/**
 * An ISA transfer of a kernel buffer; with tags ignored a buffer that cannot
 * be one segment is refused with EFBIG, counted as `isaEfbig` ("ok" is not
 * returned then: "error" without listing).
 */
async function isaTransfer(
  r: Run,
  d: IsaDriver,
  cmd: IsaCommand,
  va: number,
  len: number,
  pattern = 0,
): Promise<TransferResult | "refused"> {
  try {
    return await d.transfer(cmd, va, len, pattern);
  } catch (e) {
    if (!d.ignoreTags || !(e instanceof KernelError) || e.code !== "EFBIG") throw e;
    count(r, "isaEfbig");
    return "refused";
  }
}

async function nicOp(r: Run, d: NicDriver): Promise<void> {
  const rng = r.rng;
  // Every 16th frame is too long for the card, so that its refusal (or,
  // with tags ignored, its fault) shows up in any run of some length.
  const sent = (r.counts.nicFrames ?? 0) + (r.counts.nicOversized ?? 0);
  const oversized = sent % 16 === 15;
  const len = oversized ? NIC_MTU + 1 + rng.below(NIC_MTU) : 14 + rng.below(9018 - 14 + 1);
  const off = rng.below(4096);
  const tx = alloc(r, off + len);
  const rx = alloc(r, len);
  if (tx !== 0 && rx !== 0) {
    randomFill(r, tx + off, len);
    count(r, oversized ? "nicOversized" : "nicFrames");
    let res: TransferResult | "efbig";
    try {
      res = await d.send(tx + off, len, rx);
    } catch (e) {
      if (!(e instanceof KernelError) || e.code !== "EFBIG") throw e;
      res = "efbig";
    }
    if (res === "efbig") {
      if (oversized) count(r, "nicEfbig");
      else fail(r, `nic: a ${len}-byte frame at offset ${off} was refused with EFBIG`);
    } else if (oversized && !d.ignoreTags) {
      fail(r, `nic: a ${len}-byte frame was accepted past the card's 8 segments`);
    } else if (outcome(r, d, `nic frame of ${len} bytes`, res) && !same(r, tx + off, rx, len)) {
      fail(r, `nic: the ${len}-byte frame received differs from the one sent`);
    }
  }
}

async function nvmeOp(r: Run, d: NvmeDriver): Promise<void> {
  const rng = r.rng, bs = d.blockSize;
  const region = Math.min(d.blocks, NVME_REGION / bs);
  const most = Math.min(NVME_MAX_TRANSFER / bs, region);
  const blocks = rng.below(4) === 0 ? 1 + rng.below(most) : 1 + rng.below(Math.min(most, 8));
  const len = blocks * bs;
  const lba = rng.below(region - blocks + 1);
  const offA = 4 * rng.below(1024), offB = 4 * rng.below(1024);
  const a = alloc(r, offA + len);
  const b = alloc(r, offB + len);
  if (a !== 0 && b !== 0) {
    randomFill(r, a + offA, len);
    count(r, "nvmeWrites");
    if (outcome(r, d, `nvme write of ${blocks} blocks`, await d.write(lba, a + offA, len))) {
      count(r, "nvmeReads");
      if (outcome(r, d, `nvme read of ${blocks} blocks`, await d.read(lba, b + offB, len))) {
        if (!same(r, a + offA, b + offB, len)) {
          fail(r, `nvme: ${blocks} blocks at lba ${lba} read back differ`);
        }
      }
    }
  }
}

async function captureOp(r: Run, d: CaptureDriver): Promise<void> {
  const rng = r.rng;
  const w = 1 + rng.below(320), h = 1 + rng.below(240);
  const frame = d.allocFrame(w, h);
  try {
    count(r, "captures");
    if (outcome(r, d, `capture of ${w}x${h}`, await d.capture(frame))) {
      count(r, "scanouts");
      outcome(r, d, `scanout of ${w}x${h}`, await d.scanout(frame));
    }
  } finally {
    d.freeFrame(frame);
  }
}

/** Block I/O, network loopback, ISA transfers and captures, all checked. */
export const dmaWorkload: Workload = async (k, seed, ops) => {
  const t0 = performance.now();
  const drivers = k.drivers.filter((d) => !d.detached);
  const run: Run = {
    k,
    rng: new Mulberry32(seed),
    counts: {},
    errors: [],
    listed: new Set(),
    held: [],
    a: new Uint8Array(Math.max(65536, 2 * NIC_MTU, NVME_MAX_TRANSFER)),
    b: new Uint8Array(Math.max(65536, 2 * NIC_MTU, NVME_MAX_TRANSFER)),
  };
  const before = new Map<DeviceDriver, DriverStats>(drivers.map((d) => [d, d.stats()]));
  count(run, "devices", drivers.length);
  for (let op = 0; op < ops && drivers.length > 0; op++) {
    const d = drivers[run.rng.below(drivers.length)]!;
    if (op === ops >> 1) k.peak("dma");
    try {
      if (d instanceof IsaDriver) await isaOp(run, d);
      else if (d instanceof NicDriver) await nicOp(run, d);
      else if (d instanceof NvmeDriver) await nvmeOp(run, d);
      else if (d instanceof CaptureDriver) await captureOp(run, d);
      d.check();
    } catch (e) {
      fail(run, `${d.name}: ${(e as Error).message}`);
    } finally {
      release(run);
    }
  }
  for (const d of drivers) {
    const s = d.stats(), b = before.get(d)!;
    count(run, `${d.name}Transfers`, s.transfers - b.transfers);
    count(run, `${d.name}Bytes`, s.bytes - b.bytes);
    count(run, `${d.name}Bounced`, s.bouncedBytes - b.bouncedBytes);
    count(run, `${d.name}Faults`, s.faults - b.faults);
  }
  k.kmem.reap();
  return { name: "dma", ops, ms: performance.now() - t0, counts: run.counts, errors: run.errors };
};
