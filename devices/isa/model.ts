/**
 * An ISA DMA device on an 8237-style channel: a sound-card-like device that
 * plays a buffer from memory or records into one.
 *
 * Theory. The 8237 drives a 16-bit address counter beside an 8-bit page
 * register that never carries: a transfer reaches only the low 16 MiB and
 * wraps instead of crossing a 64 KiB boundary. So this device's DMA port
 * admits exactly one contiguous segment per transfer, of 1 to 65536 bytes,
 * below 16 MiB, inside one 64 KiB-aligned block (an 8-bit channel: any byte
 * alignment). Where the real chip would wrap and touch the wrong bytes, the
 * port refuses and nothing moves. The device holds a 64 KiB internal buffer
 * (its FIFO). Commands run to completion inside the store to CMD.
 *
 * Registers (32-bit, offsets from the window base; the common block of
 * `machine/device.ts` — ID, ISR, IER, FAULT_* — is at its usual offsets):
 *
 * | offset | name      | access | meaning                                            |
 * |--------|-----------|--------|----------------------------------------------------|
 * | 0x00   | ID        | RO     | `ISA_ID` ("ISA8")                                   |
 * | 0x10   | ADDR      | R/W    | physical address of the buffer (page + address regs) |
 * | 0x14   | COUNT     | R/W    | bytes to move, 1..65536 (the byte count, not count-1) |
 * | 0x18   | CMD       | W      | a store starts a command (below); reads 0          |
 * | 0x1C   | STATUS    | RO     | result of the last command (`ISA_STATUS_*`)        |
 * | 0x20   | CHECKSUM  | RO     | FNV-1a of the bytes the last PLAY read             |
 * | 0x24   | PATTERN   | R/W    | seed of FILL: byte i is `(PATTERN + i) & 0xff`     |
 * | 0x28   | TRANSFERS | RO     | commands that moved data                           |
 *
 * Commands: `ISA_CMD_PLAY` (1) reads COUNT bytes at ADDR into the internal
 * buffer and sets CHECKSUM; `ISA_CMD_RECORD` (2) writes the first COUNT
 * bytes of the internal buffer (what the last PLAY read, zeros at reset)
 * to ADDR; `ISA_CMD_FILL` (3) writes the FILL pattern; `ISA_CMD_RESET`
 * (0x80) clears the buffer, registers and interrupts. On success STATUS is
 * `ISA_STATUS_OK` and ISR gets `INT_DONE`; when the port refuses the
 * transfer (address at or past 16 MiB, a 64 KiB crossing, COUNT 0 or past
 * 65536, not RAM) nothing is read or written, STATUS is
 * `ISA_STATUS_DMA_FAULT`, the fault registers describe it and ISR gets
 * `INT_ERROR`. An unknown command gives `ISA_STATUS_BAD_COMMAND` and
 * `INT_ERROR`.
 *
 * A driver: allocate the buffer with a bus_dma tag made from
 * {@link ISA_DMA} (high 16 MiB - 1, boundary 64 KiB, one segment of at most
 * 64 KiB); write ADDR, COUNT (and PATTERN), set IER, store the command; on
 * the interrupt read STATUS (and CHECKSUM), then write the ISR bits back.
 *
 * @module
 */

import {
  DeviceModel,
  DMA_24BIT,
  type DmaConstraints,
  fnv1a,
  fourcc,
  INT_DONE,
  INT_ERROR,
  type Machine,
} from "../../machine/mod.ts";

/** ID register value: "ISA8". */
export const ISA_ID: number = fourcc("ISA8");

/** Register: physical address of the buffer. */
export const ISA_REG_ADDR = 0x10;
/** Register: bytes to move (1..65536). */
export const ISA_REG_COUNT = 0x14;
/** Register: a store runs a command. */
export const ISA_REG_CMD = 0x18;
/** Register: result of the last command. */
export const ISA_REG_STATUS = 0x1c;
/** Register: FNV-1a of the bytes the last PLAY read. */
export const ISA_REG_CHECKSUM = 0x20;
/** Register: seed of the FILL pattern. */
export const ISA_REG_PATTERN = 0x24;
/** Register: commands that moved data. */
export const ISA_REG_TRANSFERS = 0x28;

/** Command: read COUNT bytes at ADDR into the device. */
export const ISA_CMD_PLAY = 1;
/** Command: write the device buffer's first COUNT bytes to ADDR. */
export const ISA_CMD_RECORD = 2;
/** Command: write `(PATTERN + i) & 0xff` to the COUNT bytes at ADDR. */
export const ISA_CMD_FILL = 3;
/** Command: reset the device. */
export const ISA_CMD_RESET = 0x80;

/** STATUS: the command completed. */
export const ISA_STATUS_OK = 0;
/** STATUS: the DMA port refused the transfer; see the FAULT registers. */
export const ISA_STATUS_DMA_FAULT = 1;
/** STATUS: CMD held no known command. */
export const ISA_STATUS_BAD_COMMAND = 2;

/** Largest transfer: 64 KiB. */
export const ISA_MAX_TRANSFER = 65536;

/** The DMA constraints of an 8-bit 8237 channel. */
export const ISA_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_24BIT,
  alignment: 1,
  boundary: 65536,
  maxSegments: 1,
  maxSegmentSize: ISA_MAX_TRANSFER,
});

/** The ISA DMA device model. */
export class IsaDmaModel extends DeviceModel {
  #addr = 0;
  #count = 0;
  #status = ISA_STATUS_OK;
  #checksum = 0;
  #pattern = 0;
  #transfers = 0;
  readonly #fifo = new Uint8Array(ISA_MAX_TRANSFER);

  /** Attaches an ISA DMA device named `name` (type "isadma") to `machine`. */
  constructor(machine: Machine, name = "isa0") {
    super(machine, { name, type: "isadma", id: ISA_ID, dma: ISA_DMA });
  }

  /** Model register loads. */
  protected readReg(offset: number): number {
    switch (offset) {
      case ISA_REG_ADDR:
        return this.#addr;
      case ISA_REG_COUNT:
        return this.#count;
      case ISA_REG_STATUS:
        return this.#status;
      case ISA_REG_CHECKSUM:
        return this.#checksum;
      case ISA_REG_PATTERN:
        return this.#pattern;
      case ISA_REG_TRANSFERS:
        return this.#transfers;
      default:
        return 0;
    }
  }

  /** Model register stores. */
  protected writeReg(offset: number, value: number): void {
    switch (offset) {
      case ISA_REG_ADDR:
        this.#addr = value;
        return;
      case ISA_REG_COUNT:
        this.#count = value;
        return;
      case ISA_REG_PATTERN:
        this.#pattern = value;
        return;
      case ISA_REG_CMD:
        this.#command(value);
        return;
    }
  }

  #command(cmd: number): void {
    if (cmd === ISA_CMD_RESET) {
      this.#addr =
        this.#count =
        this.#pattern =
        this.#checksum =
        this.#transfers =
          0;
      this.#status = ISA_STATUS_OK;
      this.#fifo.fill(0);
      this.resetCommon();
      return;
    }
    const port = this.dma, n = this.#count;
    let ok: boolean;
    if (cmd !== ISA_CMD_PLAY && cmd !== ISA_CMD_RECORD && cmd !== ISA_CMD_FILL) {
      this.#status = ISA_STATUS_BAD_COMMAND;
      this.interrupt(INT_ERROR);
      return;
    }
    const op = cmd === ISA_CMD_PLAY ? "read" : "write";
    if (n > ISA_MAX_TRANSFER) {
      // More than the FIFO holds: the port refuses it (and records why).
      ok = port.validate(this.#addr, n, op);
    } else if (cmd === ISA_CMD_PLAY) {
      ok = port.read(this.#addr, this.#fifo, 0, n);
      if (ok) this.#checksum = fnv1a(this.#fifo, 0, n);
    } else if (cmd === ISA_CMD_RECORD) {
      ok = port.write(this.#addr, this.#fifo, 0, n);
    } else {
      ok = port.write(this.#addr, this.#patternBuffer(n), 0, n);
    }
    if (ok) {
      this.#transfers++;
      this.#status = ISA_STATUS_OK;
      this.interrupt(INT_DONE);
    } else {
      this.#status = ISA_STATUS_DMA_FAULT;
      this.interrupt(INT_ERROR);
    }
  }

  #pat: Uint8Array | null = null;

  #patternBuffer(len: number): Uint8Array {
    if (this.#pat === null) this.#pat = new Uint8Array(ISA_MAX_TRANSFER);
    const p = this.#pat, seed = this.#pattern & 0xff;
    for (let i = 0; i < len; i++) p[i] = (seed + i) & 0xff;
    return p;
  }
}
