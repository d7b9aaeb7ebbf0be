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
 * Registers are in `reg.ts`. ADDR and ADDR_HI latch the full address the
 * driver writes (where a real 8237's page register would drop the high
 * bits), so that the port sees, and refuses, an address the channel cannot
 * drive instead of reaching the wrong bytes.
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
 * A driver: allocate the buffer with a bus_dma tag made from the device's
 * limits (`ISA_DMA` in `reg.ts`: high 16 MiB - 1, boundary 64 KiB, one
 * segment of at most 64 KiB); write ADDR, ADDR_HI, COUNT (and PATTERN), set
 * IER, store the command; on the interrupt read STATUS (and CHECKSUM), then
 * write the ISR bits back.
 *
 * @module
 */

import { DeviceModel, fnv1a, INT_DONE, INT_ERROR, type Machine, TWO32 } from "../../machine/mod.ts";
import {
  ISA_CMD_FILL,
  ISA_CMD_PLAY,
  ISA_CMD_RECORD,
  ISA_CMD_RESET,
  ISA_DMA,
  ISA_ID,
  ISA_MAX_TRANSFER,
  ISA_REG_ADDR,
  ISA_REG_ADDR_HI,
  ISA_REG_CHECKSUM,
  ISA_REG_CMD,
  ISA_REG_COUNT,
  ISA_REG_PATTERN,
  ISA_REG_STATUS,
  ISA_REG_TRANSFERS,
  ISA_STATUS_BAD_COMMAND,
  ISA_STATUS_DMA_FAULT,
  ISA_STATUS_OK,
} from "./reg.ts";

/** The ISA DMA device model. */
export class IsaDmaModel extends DeviceModel {
  #addr = 0;
  #addrHi = 0;
  #count = 0;
  #status = ISA_STATUS_OK;
  #checksum = 0;
  #pattern = 0;
  #transfers = 0;
  readonly #fifo = new Uint8Array(ISA_MAX_TRANSFER);

  /** Attaches an ISA DMA device named `name` (type "isadma") to `machine`. */
  constructor(machine: Machine, name?: string) {
    super(machine, {
      name: name === undefined ? "isa0" : name,
      type: "isadma",
      id: ISA_ID,
      dma: ISA_DMA,
    });
  }

  /** Model register loads. */
  protected readReg(offset: number): number {
    switch (offset) {
      case ISA_REG_ADDR:
        return this.#addr;
      case ISA_REG_ADDR_HI:
        return this.#addrHi;
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
      case ISA_REG_ADDR_HI:
        this.#addrHi = value;
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
        this.#addrHi =
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
    const port = this.dma, n = this.#count, addr = this.#addrHi * TWO32 + this.#addr;
    let ok: boolean;
    if (cmd !== ISA_CMD_PLAY && cmd !== ISA_CMD_RECORD && cmd !== ISA_CMD_FILL) {
      this.#status = ISA_STATUS_BAD_COMMAND;
      this.interrupt(INT_ERROR);
      return;
    }
    const op = cmd === ISA_CMD_PLAY ? "read" : "write";
    if (n > ISA_MAX_TRANSFER) {
      // More than the FIFO holds: the port refuses it (and records why).
      ok = port.validate(addr, n, op);
    } else if (cmd === ISA_CMD_PLAY) {
      ok = port.read(addr, this.#fifo, 0, n);
      if (ok) this.#checksum = fnv1a(this.#fifo, 0, n);
    } else if (cmd === ISA_CMD_RECORD) {
      ok = port.write(addr, this.#fifo, 0, n);
    } else {
      ok = port.write(addr, this.#patternBuffer(n), 0, n);
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
