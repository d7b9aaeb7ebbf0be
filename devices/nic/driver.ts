/**
 * The driver of the 32-bit PCI network card (`model.ts`): sends frames
 * from kernel buffers and, with the card in loopback, receives each one
 * back and checks it against what was sent.
 *
 * Theory. Two tags. The frame tag is the card's own: addresses below
 * 4 GiB, at most 8 segments of at most 4 KiB, so a frame of up to
 * {@link NIC_MTU} bytes; a frame whose pages need more segments is refused
 * by bus_dmamap_load with EFBIG, as NetBSD's loads are (the caller may copy
 * it into fewer pages). When RAM extends past 4 GiB the tag reserves bounce
 * pages, and a frame in a buffer above 4 GiB goes through them. The ring
 * tag narrows the frame tag to the card's 128-byte ring alignment; the
 * transmit and receive rings (64 descriptors each) and the receive buffers
 * (one page per receive descriptor, so any frame the frame tag admits fits
 * in 8 of them) are DMA memory from it, allocated at attach, each loaded
 * into a map of its own for the driver's lifetime (one map per receive
 * buffer, as NetBSD's if_wm keeps them), so every access the card makes
 * goes through a map and every hand-over is synced.
 *
 * Sending: load the transmit map with the frame; sync it PREWRITE; write
 * one descriptor per segment from the transmit tail (EOP on the last) and
 * sync the ring PREWRITE; store the new tail (the doorbell) and wait for
 * the card's interrupt (it works later, on the machine's clock). Then sync
 * POSTWRITE, unload, sync the ring POSTREAD and check the transmit
 * descriptors came back done. In loopback the card has also received the
 * frame: the driver waits for the receive interrupt, syncs the receive
 * ring and each buffer POSTREAD, copies each piece out (into the caller's
 * kernel buffer when one is given), gives the descriptors back (ring
 * PREWRITE, buffers PREREAD, then RX_TAIL) and compares the frame with the
 * one sent.
 *
 * After an error interrupt (a DMA fault: with tags ignored, a segment above
 * 4 GiB or longer than 4 KiB, more than 8 segments, a ring the card cannot
 * reach) the card has stopped at the frame; the driver resets it and
 * programs the rings afresh. Ring addresses go into the full 64-bit
 * register pairs, so a ring the card cannot reach is the card's fault to
 * record, not the driver's to hide.
 *
 * The card is given the addresses of the maps (ring bases, receive
 * buffers, frame segments), never the memory's physical addresses: behind
 * an IOMMU they are I/O virtual addresses.
 *
 * Data structures: the rings and receive buffers (DMA memory) and their
 * maps, the bus address of each receive buffer in a Float64Array, one
 * transmit map, a 16-byte descriptor scratch and two frame-sized scratch
 * arrays, all made at attach. Cost of a frame: O(pages) to load, O(bytes)
 * to copy out and compare.
 *
 * @module
 */

import {
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_POSTWRITE,
  BUS_DMASYNC_PREREAD,
  BUS_DMASYNC_PREWRITE,
  type DmaMap,
  type DmaMemory,
  type DmaTag,
} from "../../mm/bus_dma.ts";
import { checkInteger, KernelError } from "../../mm/errors.ts";
import { type DeviceInfo, INT_DONE, INT_ERROR, REG_IER, TWO32 } from "../../machine/mod.ts";
import {
  DESC_ADDR_HI,
  DESC_ADDR_LO,
  DESC_DD,
  DESC_EOP,
  DESC_FLAGS,
  DESC_LEN,
  DESC_SIZE,
  NIC_CTRL_LOOPBACK,
  NIC_CTRL_RESET,
  NIC_CTRL_RX_EN,
  NIC_CTRL_TX_EN,
  NIC_ID,
  NIC_INT_RX,
  NIC_INT_RX_NOBUF,
  NIC_MAX_SEGMENT_SIZE,
  NIC_MAX_SEGMENTS,
  NIC_REG_CTRL,
  NIC_REG_RX_BASE,
  NIC_REG_RX_BASE_HI,
  NIC_REG_RX_COUNT,
  NIC_REG_RX_HEAD,
  NIC_REG_RX_TAIL,
  NIC_REG_STATUS,
  NIC_REG_TX_BASE,
  NIC_REG_TX_BASE_HI,
  NIC_REG_TX_COUNT,
  NIC_REG_TX_HEAD,
  NIC_REG_TX_TAIL,
  NIC_RING_ALIGN,
} from "./reg.ts";
import { DriverBase, type DriverSpec, type TransferResult } from "../driver.ts";
import type { DriverKernel } from "../kernel_if.ts";

/** Largest frame the card takes: 8 segments of 4 KiB. */
export const NIC_MTU: number = NIC_MAX_SEGMENTS * NIC_MAX_SEGMENT_SIZE;
/** Descriptors per ring. */
export const NIC_RING_SIZE = 64;
/** Bytes of each receive buffer: a page. */
export const NIC_RX_BUFFER = 4096;

const INTR_ALL = INT_DONE | INT_ERROR | NIC_INT_RX | NIC_INT_RX_NOBUF;
const RING_BYTES = NIC_RING_SIZE * DESC_SIZE;

const SPEC: DriverSpec = {
  type: "nic",
  id: NIC_ID,
  narrow: { maxTransfer: NIC_MTU },
  ignoredMaxTransfer: 2 * NIC_MTU,
};

/** Driver of the loopback network card. */
export class NicDriver extends DriverBase {
  /** The ring tag (rings and receive buffers). */
  readonly ringTag: DmaTag;
  /** The transmit map (one frame at a time). */
  readonly txMap: DmaMap;
  /** The transmit ring and its map. */
  readonly txRing: DmaMemory;
  /** The receive ring and its map. */
  readonly rxRing: DmaMemory;
  /** The receive buffers, one page per receive descriptor. */
  readonly rxBuffers: DmaMemory;
  /** Frames dropped by the card for want of receive descriptors. */
  drops = 0;

  readonly #txRingMap: DmaMap;
  readonly #rxRingMap: DmaMap;
  readonly #rxMaps: DmaMap[] = [];
  readonly #rxAddr = new Float64Array(NIC_RING_SIZE);
  readonly #desc = new Uint8Array(DESC_SIZE);
  readonly #dv = new DataView(this.#desc.buffer);
  readonly #sent: Uint8Array;
  readonly #got: Uint8Array;
  readonly #one = new Float64Array(2);
  #ringBreach = false;
  #txTail = 0;
  #rxNext = 0;

  /** Attaches to the card `info`: tags, rings, receive buffers, their maps, the transmit map, interrupt. */
  constructor(kernel: DriverKernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    this.#sent = new Uint8Array(this.tag.maxTransfer);
    this.#got = new Uint8Array(this.tag.maxTransfer);
    try {
      this.ringTag = this.makeTag(`${info.name} rings`, { alignment: NIC_RING_ALIGN }, {
        bouncePages: 0,
      });
      this.txRing = this.allocMemory(this.ringTag, RING_BYTES, { nsegs: 1 });
      this.rxRing = this.allocMemory(this.ringTag, RING_BYTES, { nsegs: 1 });
      this.rxBuffers = this.allocMemory(this.ringTag, NIC_RING_SIZE * NIC_RX_BUFFER, {
        nsegs: NIC_RING_SIZE,
      });
      this.#txRingMap = this.#loaded(this.txRing, "tx ring");
      this.#rxRingMap = this.#loaded(this.rxRing, "rx ring");
      let i = 0;
      for (const [pa, n] of this.rxBuffers.segs) {
        for (let o = 0; o < n && i < NIC_RING_SIZE; o += NIC_RX_BUFFER) {
          const map = this.createMap(this.ringTag, NIC_RX_BUFFER, 1, {
            name: `${info.name} rx buffer ${i}`,
          });
          this.busDma.loadPhys(map, [[pa + o, NIC_RX_BUFFER]]);
          this.#rxMaps.push(map);
          this.#rxAddr[i++] = map.segAddr(0);
        }
      }
      this.#ringBreach = this.#outside(this.#txRingMap.segAddr(0), RING_BYTES) ||
        this.#outside(this.#rxRingMap.segAddr(0), RING_BYTES);
      this.txMap = this.ignoreTags
        ? this.createMap(this.tag, 2 * NIC_MTU, 2 * NIC_MTU / NIC_RX_BUFFER + 1, {
          name: `${info.name} tx`,
        })
        : this.createMap(this.tag, NIC_MTU, NIC_MAX_SEGMENTS, { name: `${info.name} tx` });
      this.establish();
    } catch (e) {
      this.abandon(e);
    }
    this.takeFaultCount();
    this.#init();
  }

  /**
   * Sends the `len`-byte frame at kernel address `va` and checks the
   * looped-back copy against it; when `rxVa` is given, the received frame
   * is also copied there (a kernel buffer of at least `len` bytes). Rejects,
   * changing nothing, on bad arguments or when bus_dma refuses the load
   * (EFBIG: more than 8 segments or longer than {@link NIC_MTU}).
   */
  send(va: number, len: number, rxVa?: number): Promise<TransferResult> {
    try {
      this.assertAttached();
      checkInteger("va", va);
      checkInteger("len", len, 1);
      if (rxVa !== undefined) checkInteger("rxVa", rxVa);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serialize(() => this.#send(va, len, rxVa));
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("NicDriver");
    const s = this.counters;
    if (s.bouncedBytes > s.bytes) {
      throw new KernelError("CORRUPT", "NicDriver.check: more bytes bounced than sent");
    }
    for (const v of [this.#txTail, this.#rxNext]) {
      if (!Number.isInteger(v) || v < 0 || v >= NIC_RING_SIZE) {
        throw new KernelError("CORRUPT", `NicDriver.check: ring index ${v}`);
      }
    }
    if (this.detached) return;
    if (this.txMap.mapsize !== 0) {
      throw new KernelError("CORRUPT", "NicDriver.check: transmit map left loaded");
    }
    if (this.rd(NIC_REG_TX_HEAD) !== this.#txTail) {
      throw new KernelError(
        "CORRUPT",
        "NicDriver.check: the card has transmit descriptors pending",
      );
    }
    if (this.rd(NIC_REG_RX_HEAD) !== this.#rxNext) {
      throw new KernelError("CORRUPT", "NicDriver.check: received descriptors left unprocessed");
    }
  }

  /** Resets the card. */
  protected quiesce(): void {
    this.wr(NIC_REG_CTRL, NIC_CTRL_RESET);
  }

  /** DMA memory loaded whole into a map of the ring tag, for the driver's lifetime. */
  #loaded(mem: DmaMemory, what: string): DmaMap {
    const map = this.createMap(this.ringTag, mem.size, 1, { name: `${this.name} ${what}` });
    this.busDma.loadMemory(map, mem);
    return map;
  }

  /** True when the card cannot reach `[pa, pa + len)` as one transfer. */
  #outside(pa: number, len: number): boolean {
    this.#one[0] = pa;
    this.#one[1] = len;
    return this.breach(this.#one, 1);
  }

  async #send(va: number, len: number, rxVa: number | undefined): Promise<TransferResult> {
    const bd = this.busDma, map = this.txMap, s = this.counters;
    await this.load(map, { kind: "kva", va, len });
    const bounced = map.bouncedBytes;
    const first = this.#txTail;
    const nsegs = map.nsegs;
    // What the card will touch: the frame's segments, the rings, and the
    // receive buffers the frame lands in.
    let breach = this.#ringBreach || this.breach(map.segs, nsegs);
    for (let i = 0, left = len; left > 0 && i < NIC_MAX_SEGMENTS; i++, left -= NIC_RX_BUFFER) {
      breach ||= this.#outside(
        this.#rxAddr[(this.#rxNext + i) % NIC_RING_SIZE]!,
        Math.min(left, NIC_RX_BUFFER),
      );
    }
    let isr: number;
    try {
      this.sync(map, BUS_DMASYNC_PREWRITE);
      const dv = this.#dv;
      for (let i = 0; i < nsegs; i++) {
        const pa = map.segAddr(i);
        const hi = Math.floor(pa / TWO32);
        dv.setUint32(DESC_ADDR_LO, pa - hi * TWO32, true);
        dv.setUint32(DESC_ADDR_HI, hi, true);
        dv.setUint32(DESC_LEN, map.segLen(i), true);
        dv.setUint32(DESC_FLAGS, i === nsegs - 1 ? DESC_EOP : 0, true);
        this.kernel.write(this.#descVa(this.txRing, (first + i) % NIC_RING_SIZE), this.#desc);
      }
      this.sync(this.#txRingMap, BUS_DMASYNC_PREWRITE);
      this.#txTail = (first + nsegs) % NIC_RING_SIZE;
      isr = await this.command(NIC_REG_TX_TAIL, this.#txTail);
      this.sync(map, BUS_DMASYNC_POSTWRITE);
    } finally {
      bd.unload(map);
    }
    if (isr & INT_ERROR) return this.account(this.#failed(), breach);
    if (!(isr & INT_DONE) || this.rd(NIC_REG_TX_HEAD) !== this.#txTail) {
      this.error(`frame of ${len} bytes: no transmit completion`);
      this.#init();
      return this.account("error", breach);
    }
    this.sync(this.#txRingMap, BUS_DMASYNC_POSTREAD);
    for (let i = 0; i < nsegs; i++) {
      this.kernel.read(this.#descVa(this.txRing, (first + i) % NIC_RING_SIZE), this.#desc);
      if (!(this.#dv.getUint32(DESC_FLAGS, true) & DESC_DD)) {
        this.error(`transmit descriptor ${(first + i) % NIC_RING_SIZE} not done`);
        this.#init();
        return this.account("error", breach);
      }
    }
    s.transfers++;
    s.bytes += len;
    s.bouncedBytes += bounced;
    const rx = await this.waitFor(NIC_INT_RX | NIC_INT_RX_NOBUF | INT_ERROR);
    if (rx & INT_ERROR) return this.account(this.#failed(), breach);
    if (rx & NIC_INT_RX_NOBUF) {
      this.drops++;
      this.error(`frame of ${len} bytes dropped: no receive descriptors`);
      return this.account("error", breach);
    }
    if (!(rx & NIC_INT_RX)) {
      this.error(`frame of ${len} bytes was not received`);
      return this.account("error", breach);
    }
    const got = this.#receive();
    if (got < 0) return this.account("error", breach);
    s.transfers++;
    s.bytes += got;
    if (rxVa !== undefined) this.kernel.write(rxVa, this.#got.subarray(0, Math.min(got, len)));
    const sent = this.#sent.subarray(0, len);
    this.kernel.read(va, sent);
    let same = got === len;
    for (let i = 0; same && i < len; i++) same = sent[i] === this.#got[i];
    if (!same) {
      s.mismatches++;
      return this.account("mismatch", breach);
    }
    return this.account("ok", breach);
  }

  /** Kernel address of descriptor `i` of `ring`. */
  #descVa(ring: DmaMemory, i: number): number {
    return ring.kva + i * DESC_SIZE;
  }

  /** Resets the card and programs empty rings: every receive descriptor but one given to it. */
  #init(): void {
    this.wr(NIC_REG_CTRL, NIC_CTRL_RESET);
    this.wr(REG_IER, INTR_ALL);
    this.kernel.fill(this.txRing.kva, RING_BYTES, 0);
    for (let i = 0; i < NIC_RING_SIZE; i++) this.#giveRx(i);
    this.sync(this.#txRingMap, BUS_DMASYNC_PREWRITE);
    this.sync(this.#rxRingMap, BUS_DMASYNC_PREWRITE);
    this.wr64(NIC_REG_TX_BASE, NIC_REG_TX_BASE_HI, this.#txRingMap.segAddr(0));
    this.wr(NIC_REG_TX_COUNT, NIC_RING_SIZE);
    this.wr64(NIC_REG_RX_BASE, NIC_REG_RX_BASE_HI, this.#rxRingMap.segAddr(0));
    this.wr(NIC_REG_RX_COUNT, NIC_RING_SIZE);
    this.wr(NIC_REG_RX_TAIL, NIC_RING_SIZE - 1);
    this.wr(NIC_REG_CTRL, NIC_CTRL_TX_EN | NIC_CTRL_RX_EN | NIC_CTRL_LOOPBACK);
    this.#txTail = 0;
    this.#rxNext = 0;
  }

  /** Writes receive descriptor `i` afresh (its buffer, a page of room, no flags); readies the buffer. */
  #giveRx(i: number): void {
    const dv = this.#dv, pa = this.#rxAddr[i]!;
    const hi = Math.floor(pa / TWO32);
    dv.setUint32(DESC_ADDR_LO, pa - hi * TWO32, true);
    dv.setUint32(DESC_ADDR_HI, hi, true);
    dv.setUint32(DESC_LEN, NIC_RX_BUFFER, true);
    dv.setUint32(DESC_FLAGS, 0, true);
    this.kernel.write(this.#descVa(this.rxRing, i), this.#desc);
    this.sync(this.#rxMaps[i]!, BUS_DMASYNC_PREREAD);
  }

  /**
   * Takes the frame the card received: the descriptors from the driver's
   * next index up to RX_HEAD, copied into #got, given back to the card.
   * Returns the frame length, or -1 (counted) when the ring is not one
   * whole frame.
   */
  #receive(): number {
    const k = this.kernel, dv = this.#dv, got = this.#got;
    const head = this.rd(NIC_REG_RX_HEAD);
    this.sync(this.#rxRingMap, BUS_DMASYNC_POSTREAD);
    let len = 0, eop = false, ok = true;
    for (let i = this.#rxNext; i !== head; i = (i + 1) % NIC_RING_SIZE) {
      k.read(this.#descVa(this.rxRing, i), this.#desc);
      const n = dv.getUint32(DESC_LEN, true);
      const flags = dv.getUint32(DESC_FLAGS, true);
      if (!(flags & DESC_DD) || eop || n > NIC_RX_BUFFER || len + n > got.length) ok = false;
      else {
        this.sync(this.#rxMaps[i]!, BUS_DMASYNC_POSTREAD);
        k.read(this.rxBuffers.kva + i * NIC_RX_BUFFER, got.subarray(len, len + n));
        len += n;
        eop = (flags & DESC_EOP) !== 0;
      }
      this.#giveRx(i);
    }
    this.sync(this.#rxRingMap, BUS_DMASYNC_PREWRITE);
    this.#rxNext = head;
    this.wr(NIC_REG_RX_TAIL, (head + NIC_RING_SIZE - 1) % NIC_RING_SIZE);
    if (!ok || !eop) {
      this.error("the receive ring did not hold one whole frame");
      return -1;
    }
    return len;
  }

  /** After an error interrupt: note the fault, reset the card and its rings. */
  #failed(): TransferResult {
    const status = this.rd(NIC_REG_STATUS);
    const counted = this.noteFault();
    if (counted === 0) this.error(`transmit failed with status ${status}`);
    this.#init();
    return counted === 0 ? "error" : "fault";
  }
}
