/**
 * The driver of the 32-bit PCI network card (`model.ts`): sends frames
 * from kernel buffers and, with the card in loopback, receives each one
 * back and checks it against what was sent.
 *
 * Theory. Two tags. The frame tag is the card's: addresses below 4 GiB, at
 * most 8 segments of at most 4 KiB, so a frame of up to {@link NIC_MTU}
 * bytes; a frame whose pages need more segments is refused by
 * bus_dmamap_load with EFBIG, as NetBSD's loads are (the caller may copy it
 * into fewer pages). The ring tag adds the card's 128-byte ring alignment;
 * the transmit and receive rings (64 descriptors each) and the receive
 * buffers (one page per receive descriptor, so any frame the frame tag
 * admits fits in 8 of them) are DMA memory from it, allocated at attach.
 * When RAM extends past 4 GiB the driver reserves a bounce pool below it,
 * and a frame in a buffer above 4 GiB goes through bounce pages.
 *
 * Sending: load the transmit map with the frame; sync PREWRITE; write one
 * descriptor per segment from the transmit tail (EOP on the last); store
 * the new tail (the doorbell). The model transmits inside the store and,
 * in loopback, scatters the frame over receive descriptors, then raises its
 * line; the driver lets the interrupt controller deliver (the interrupt
 * arriving: the handler collects and acknowledges ISR). Then sync
 * POSTWRITE, unload, check the transmit descriptors came back done, walk
 * the receive ring from the driver's next index to RX_HEAD copying each
 * piece out (into the caller's kernel buffer when one is given), give the
 * descriptors back by moving RX_TAIL, and compare the frame with the one
 * sent. Receive buffers are DMA memory, reached without a map: this
 * machine's DMA is coherent, so a sync of them would copy nothing.
 *
 * After an error interrupt (a DMA fault: with tags ignored, a segment above
 * 4 GiB or longer than 4 KiB, more than 8 segments) the card has stopped at
 * the frame; the driver resets it and programs the rings afresh.
 *
 * Data structures: the rings and receive buffers (DMA memory), the physical
 * address of each receive buffer in a Float64Array, one transmit map, a
 * 16-byte descriptor scratch and two frame-sized scratch arrays, all made
 * at attach. Cost of a frame: O(pages) to load, O(bytes) to copy out and
 * compare.
 *
 * @module
 */

import type { Kernel } from "../../boot/kernel.ts";
import {
  BUS_DMASYNC_POSTWRITE,
  BUS_DMASYNC_PREWRITE,
  type DmaMap,
  type DmaMemory,
  DmaTag,
} from "../../mm/bus_dma.ts";
import { checkInteger, KernelError } from "../../mm/errors.ts";
import { type DeviceInfo, INT_DONE, INT_ERROR, REG_IER } from "../../machine/mod.ts";
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
  NIC_DMA,
  NIC_ID,
  NIC_INT_RX,
  NIC_INT_RX_NOBUF,
  NIC_MAX_SEGMENT_SIZE,
  NIC_MAX_SEGMENTS,
  NIC_REG_CTRL,
  NIC_REG_RX_BASE,
  NIC_REG_RX_COUNT,
  NIC_REG_RX_HEAD,
  NIC_REG_RX_TAIL,
  NIC_REG_STATUS,
  NIC_REG_TX_BASE,
  NIC_REG_TX_COUNT,
  NIC_REG_TX_HEAD,
  NIC_REG_TX_TAIL,
  NIC_RING_ALIGN,
} from "./model.ts";
import { DriverBase, type DriverSpec, type TransferResult, TWO32 } from "../driver.ts";

/** Largest frame the card takes: 8 segments of 4 KiB. */
export const NIC_MTU: number = NIC_MAX_SEGMENTS * NIC_MAX_SEGMENT_SIZE;
/** Descriptors per ring. */
export const NIC_RING_SIZE = 64;
/** Bytes of each receive buffer: a page. */
export const NIC_RX_BUFFER = 4096;
/** Bounce pool pages reserved below 4 GiB when RAM goes past it: two full frames. */
export const NIC_BOUNCE_PAGES = 2 * (NIC_MAX_SEGMENTS + 1);

const INTR_ALL = INT_DONE | INT_ERROR | NIC_INT_RX | NIC_INT_RX_NOBUF;

const SPEC: DriverSpec = {
  type: "nic",
  article: "a",
  id: NIC_ID,
  dma: NIC_DMA,
  maxSize: NIC_MTU,
  ignoredMaxSize: 2 * NIC_MTU,
};

/** Driver of the loopback network card. */
export class NicDriver extends DriverBase {
  /** The frame tag. */
  declare readonly tag: DmaTag;
  /** The ring tag (rings and receive buffers). */
  readonly ringTag: DmaTag;
  /** The transmit map (one frame at a time). */
  readonly txMap: DmaMap;
  /** The transmit ring. */
  readonly txRing: DmaMemory;
  /** The receive ring. */
  readonly rxRing: DmaMemory;
  /** The receive buffers, one page per receive descriptor. */
  readonly rxBuffers: DmaMemory;
  /** Frames dropped by the card for want of receive descriptors. */
  drops = 0;

  readonly #rxAddr = new Float64Array(NIC_RING_SIZE);
  readonly #desc = new Uint8Array(DESC_SIZE);
  readonly #dv = new DataView(this.#desc.buffer);
  readonly #sent: Uint8Array;
  readonly #got: Uint8Array;
  #txTail = 0;
  #rxNext = 0;

  /** Attaches to the card `info`: tags, bounce pool, rings, receive buffers, map, interrupt. */
  constructor(kernel: Kernel, info: DeviceInfo) {
    super(kernel, info, SPEC);
    this.ringTag = this.ignoreTags
      ? new DmaTag(`${info.name} rings (tag ignored)`, {})
      : new DmaTag(`${info.name} rings`, {
        highAddr: NIC_DMA.maxAddress,
        alignment: NIC_RING_ALIGN,
      });
    this.#sent = new Uint8Array(this.tag.maxSize);
    this.#got = new Uint8Array(this.tag.maxSize);
    const bd = kernel.busDma;
    if (!this.ignoreTags && bd.mightBounce(this.tag)) bd.reserveBounce(this.tag, NIC_BOUNCE_PAGES);
    // All or nothing: what was taken is given back if a later step fails.
    const taken: DmaMemory[] = [];
    let map: DmaMap | null = null;
    try {
      const ring = NIC_RING_SIZE * DESC_SIZE;
      this.txRing = bd.dmamemAlloc(this.ringTag, ring, { nsegs: 1 });
      taken.push(this.txRing);
      this.rxRing = bd.dmamemAlloc(this.ringTag, ring, { nsegs: 1 });
      taken.push(this.rxRing);
      this.rxBuffers = bd.dmamemAlloc(this.ringTag, NIC_RING_SIZE * NIC_RX_BUFFER, {
        nsegs: NIC_RING_SIZE,
      });
      taken.push(this.rxBuffers);
      let i = 0;
      for (const [pa, n] of this.rxBuffers.segs) {
        for (let o = 0; o < n && i < NIC_RING_SIZE; o += NIC_RX_BUFFER) this.#rxAddr[i++] = pa + o;
      }
      for (const mem of [this.txRing, this.rxRing]) {
        if (mem.segs[0]![0] >= TWO32) {
          throw new KernelError(
            "EFAULT",
            `ring at 0x${mem.segs[0]![0].toString(16)} does not fit the 32-bit ring base register`,
          );
        }
      }
      map = this.ignoreTags
        ? bd.createMap(this.tag, 2 * NIC_MTU, 2 * NIC_MTU / NIC_RX_BUFFER + 1)
        : bd.createMap(this.tag, NIC_MTU, NIC_MAX_SEGMENTS);
      this.establish();
    } catch (e) {
      if (map !== null) bd.destroyMap(map);
      for (const mem of taken) bd.dmamemFree(mem);
      throw e;
    }
    this.txMap = map;
    this.takeFaultCount();
    this.#init();
  }

  /**
   * Sends the `len`-byte frame at kernel address `va` and checks the
   * looped-back copy against it; when `rxVa` is given, the received frame
   * is also copied there (a kernel buffer of at least `len` bytes). Throws,
   * changing nothing, on bad arguments or when bus_dma refuses the load
   * (EFBIG: more than 8 segments or longer than {@link NIC_MTU}).
   */
  send(va: number, len: number, rxVa?: number): TransferResult {
    this.assertAttached();
    checkInteger("va", va);
    checkInteger("len", len, 1);
    if (rxVa !== undefined) checkInteger("rxVa", rxVa);
    const bd = this.kernel.busDma, map = this.txMap, s = this.counters;
    bd.load(map, va, len);
    const bounced = map.bouncedBytes;
    const first = this.#txTail;
    const nsegs = map.nsegs;
    let isr: number;
    try {
      bd.sync(map, BUS_DMASYNC_PREWRITE);
      const dv = this.#dv;
      for (let i = 0; i < nsegs; i++) {
        const pa = map.segAddr(i);
        const hi = Math.floor(pa / TWO32);
        dv.setUint32(DESC_ADDR_LO, pa - hi * TWO32, true);
        dv.setUint32(DESC_ADDR_HI, hi, true);
        dv.setUint32(DESC_LEN, map.segLen(i), true);
        dv.setUint32(DESC_FLAGS, i === nsegs - 1 ? DESC_EOP : 0, true);
        this.kernel.pmap.write(this.#descVa(this.txRing, (first + i) % NIC_RING_SIZE), this.#desc);
      }
      this.#txTail = (first + nsegs) % NIC_RING_SIZE;
      // The card sends (and loops back) inside the store.
      isr = this.storeAndDeliver(NIC_REG_TX_TAIL, this.#txTail);
      bd.sync(map, BUS_DMASYNC_POSTWRITE);
    } finally {
      bd.unload(map);
    }
    if (isr & INT_ERROR) return this.#failed();
    if (!(isr & INT_DONE) || this.rd(NIC_REG_TX_HEAD) !== this.#txTail) {
      this.error(`frame of ${len} bytes: no transmit completion`);
      this.#init();
      return "error";
    }
    for (let i = 0; i < nsegs; i++) {
      this.kernel.pmap.read(this.#descVa(this.txRing, (first + i) % NIC_RING_SIZE), this.#desc);
      if (!(this.#dv.getUint32(DESC_FLAGS, true) & DESC_DD)) {
        this.error(`transmit descriptor ${(first + i) % NIC_RING_SIZE} not done`);
        this.#init();
        return "error";
      }
    }
    s.transfers++;
    s.bytes += len;
    s.bouncedBytes += bounced;
    if (isr & NIC_INT_RX_NOBUF) {
      this.drops++;
      this.error(`frame of ${len} bytes dropped: no receive descriptors`);
      return "error";
    }
    if (!(isr & NIC_INT_RX)) {
      this.error(`frame of ${len} bytes was not received`);
      return "error";
    }
    const got = this.#receive();
    if (got < 0) return "error";
    s.transfers++;
    s.bytes += got;
    if (rxVa !== undefined) this.kernel.pmap.write(rxVa, this.#got.subarray(0, Math.min(got, len)));
    const sent = this.#sent.subarray(0, len);
    this.kernel.pmap.read(va, sent);
    let same = got === len;
    for (let i = 0; same && i < len; i++) same = sent[i] === this.#got[i];
    if (!same) {
      s.mismatches++;
      return "mismatch";
    }
    return "ok";
  }

  /** Verifies the driver's invariants. */
  check(): void {
    this.checkCounters("NicDriver");
    const s = this.counters;
    if (s.bouncedBytes > s.bytes) {
      throw new KernelError("CORRUPT", "NicDriver.check: more bytes bounced than sent");
    }
    if (this.txMap.mapsize !== 0) {
      throw new KernelError("CORRUPT", "NicDriver.check: transmit map left loaded");
    }
    for (const v of [this.#txTail, this.#rxNext]) {
      if (!Number.isInteger(v) || v < 0 || v >= NIC_RING_SIZE) {
        throw new KernelError("CORRUPT", `NicDriver.check: ring index ${v}`);
      }
    }
    if (this.detached) return;
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

  /** Frees the map, rings and buffers. */
  protected release(): void {
    const bd = this.kernel.busDma;
    bd.destroyMap(this.txMap);
    bd.dmamemFree(this.txRing);
    bd.dmamemFree(this.rxRing);
    bd.dmamemFree(this.rxBuffers);
  }

  /** Kernel address of descriptor `i` of `ring`. */
  #descVa(ring: DmaMemory, i: number): number {
    return ring.kva + i * DESC_SIZE;
  }

  /** Resets the card and programs empty rings: every receive descriptor but one given to it. */
  #init(): void {
    this.wr(NIC_REG_CTRL, NIC_CTRL_RESET);
    this.wr(REG_IER, INTR_ALL);
    this.kernel.pmap.fill(this.txRing.kva, NIC_RING_SIZE * DESC_SIZE, 0);
    for (let i = 0; i < NIC_RING_SIZE; i++) this.#giveRx(i);
    this.wr(NIC_REG_TX_BASE, this.txRing.segs[0]![0]);
    this.wr(NIC_REG_TX_COUNT, NIC_RING_SIZE);
    this.wr(NIC_REG_RX_BASE, this.rxRing.segs[0]![0]);
    this.wr(NIC_REG_RX_COUNT, NIC_RING_SIZE);
    this.wr(NIC_REG_RX_TAIL, NIC_RING_SIZE - 1);
    this.wr(NIC_REG_CTRL, NIC_CTRL_TX_EN | NIC_CTRL_RX_EN | NIC_CTRL_LOOPBACK);
    this.#txTail = 0;
    this.#rxNext = 0;
  }

  /** Writes receive descriptor `i` afresh: its buffer, a page of room, no flags. */
  #giveRx(i: number): void {
    const dv = this.#dv, pa = this.#rxAddr[i]!;
    const hi = Math.floor(pa / TWO32);
    dv.setUint32(DESC_ADDR_LO, pa - hi * TWO32, true);
    dv.setUint32(DESC_ADDR_HI, hi, true);
    dv.setUint32(DESC_LEN, NIC_RX_BUFFER, true);
    dv.setUint32(DESC_FLAGS, 0, true);
    this.kernel.pmap.write(this.#descVa(this.rxRing, i), this.#desc);
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
    let len = 0, eop = false, ok = true;
    for (let i = this.#rxNext; i !== head; i = (i + 1) % NIC_RING_SIZE) {
      k.pmap.read(this.#descVa(this.rxRing, i), this.#desc);
      const n = dv.getUint32(DESC_LEN, true);
      const flags = dv.getUint32(DESC_FLAGS, true);
      if (!(flags & DESC_DD) || eop || n > NIC_RX_BUFFER || len + n > got.length) ok = false;
      else {
        k.pmap.read(this.rxBuffers.kva + i * NIC_RX_BUFFER, got.subarray(len, len + n));
        len += n;
        eop = (flags & DESC_EOP) !== 0;
      }
      this.#giveRx(i);
    }
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
