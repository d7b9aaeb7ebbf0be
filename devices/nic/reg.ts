/**
 * The register and descriptor layout of the 32-bit PCI network card,
 * shared by its model (`model.ts`) and its driver (`driver.ts`).
 *
 * Registers (32-bit; the common block of `machine/device.ts` — ID, ISR,
 * IER, FAULT_* — at its usual offsets):
 *
 * | offset | name       | access | meaning                                          |
 * |--------|------------|--------|--------------------------------------------------|
 * | 0x00   | ID         | RO     | `NIC_ID` ("NIC1")                                 |
 * | 0x04   | CTRL       | R/W    | `NIC_CTRL_TX_EN`, `_RX_EN`, `_LOOPBACK`; `_RESET` (self-clearing) |
 * | 0x10   | TX_BASE    | R/W    | transmit ring address, low 32 bits (128-byte aligned) |
 * | 0x14   | TX_COUNT   | R/W    | transmit descriptors (multiple of 8, 8..4096)    |
 * | 0x18   | TX_HEAD    | RO     | next descriptor the device will read             |
 * | 0x1C   | TX_TAIL    | R/W    | one past the last descriptor ready; the doorbell |
 * | 0x20   | RX_BASE    | R/W    | receive ring address, low 32 bits                |
 * | 0x24   | RX_COUNT   | R/W    | receive descriptors                              |
 * | 0x28   | RX_HEAD    | RO     | next descriptor the device will fill             |
 * | 0x2C   | RX_TAIL    | R/W    | one past the last descriptor given to the device |
 * | 0x30   | STATUS     | RO     | cause of the last error (`NIC_STATUS_*`)         |
 * | 0x34   | TX_BASE_HI | R/W    | transmit ring address, high 32 bits              |
 * | 0x38   | RX_BASE_HI | R/W    | receive ring address, high 32 bits               |
 * | 0x60   | TX_FRAMES  | RO     | frames sent                                      |
 * | 0x64   | RX_FRAMES  | RO     | frames received                                  |
 * | 0x68   | RX_DROPS   | RO     | frames dropped for want of receive descriptors   |
 *
 * The ring address registers and the descriptors' address fields hold 64
 * bits, as e1000's do, though the card drives only 32 of them: the port
 * refuses what lies above 4 GiB.
 *
 * Descriptor layout (little-endian, both rings):
 *
 * | offset | field   | transmit                       | receive                                   |
 * |--------|---------|--------------------------------|-------------------------------------------|
 * | 0x0    | ADDR_LO | buffer address, low 32 bits    | buffer address, low 32 bits               |
 * | 0x4    | ADDR_HI | high 32 bits                   | high 32 bits                              |
 * | 0x8    | LEN     | bytes in this buffer (1..4096) | driver: buffer size; device: bytes stored |
 * | 0xC    | FLAGS   | `DESC_EOP` on a frame's last   | device writes `DESC_DD`, `DESC_EOP` on the last |
 *
 * ISR bits: `INT_DONE` (a frame was sent), `INT_ERROR`, `NIC_INT_RX` (a
 * frame was received), `NIC_INT_RX_NOBUF` (a frame was dropped).
 *
 * @module
 */

import { DMA_32BIT, type DmaConstraints, fourcc } from "../../machine/mod.ts";

/** ID register value: "NIC1". */
export const NIC_ID: number = fourcc("NIC1");

/** Register: control bits. */
export const NIC_REG_CTRL = 0x04;
/** Register: transmit ring base, low 32 bits. */
export const NIC_REG_TX_BASE = 0x10;
/** Register: transmit ring descriptor count. */
export const NIC_REG_TX_COUNT = 0x14;
/** Register: transmit head (device). */
export const NIC_REG_TX_HEAD = 0x18;
/** Register: transmit tail (driver; the doorbell). */
export const NIC_REG_TX_TAIL = 0x1c;
/** Register: receive ring base, low 32 bits. */
export const NIC_REG_RX_BASE = 0x20;
/** Register: receive ring descriptor count. */
export const NIC_REG_RX_COUNT = 0x24;
/** Register: receive head (device). */
export const NIC_REG_RX_HEAD = 0x28;
/** Register: receive tail (driver). */
export const NIC_REG_RX_TAIL = 0x2c;
/** Register: cause of the last error. */
export const NIC_REG_STATUS = 0x30;
/** Register: transmit ring base, high 32 bits. */
export const NIC_REG_TX_BASE_HI = 0x34;
/** Register: receive ring base, high 32 bits. */
export const NIC_REG_RX_BASE_HI = 0x38;
/** Register: frames sent. */
export const NIC_REG_TX_FRAMES = 0x60;
/** Register: frames received. */
export const NIC_REG_RX_FRAMES = 0x64;
/** Register: frames dropped. */
export const NIC_REG_RX_DROPS = 0x68;

/** CTRL: transmit enabled. */
export const NIC_CTRL_TX_EN = 1 << 0;
/** CTRL: receive enabled. */
export const NIC_CTRL_RX_EN = 1 << 1;
/** CTRL: transmitted frames are received. */
export const NIC_CTRL_LOOPBACK = 1 << 2;
/** CTRL: reset the device (reads back 0). */
export const NIC_CTRL_RESET = 0x80000000;

/** ISR bit: a frame was received. */
export const NIC_INT_RX = 1 << 2;
/** ISR bit: a frame was dropped for want of receive descriptors. */
export const NIC_INT_RX_NOBUF = 1 << 3;

/** STATUS: no error. */
export const NIC_STATUS_OK = 0;
/** STATUS: the DMA port refused a transfer (see FAULT_*). */
export const NIC_STATUS_DMA_FAULT = 1;
/** STATUS: a ring base is not 128-byte aligned or its count is bad. */
export const NIC_STATUS_BAD_RING = 2;
/** STATUS: a frame has more than 8 descriptors. */
export const NIC_STATUS_TOO_MANY_SEGMENTS = 3;

/** Descriptor FLAGS: last descriptor of a frame. */
export const DESC_EOP = 1 << 0;
/** Descriptor FLAGS: the device is done with this descriptor. */
export const DESC_DD = 0x80000000;
/** Bytes per descriptor. */
export const DESC_SIZE = 16;
/** Descriptor field offsets. */
export const DESC_ADDR_LO = 0x0, DESC_ADDR_HI = 0x4, DESC_LEN = 0x8, DESC_FLAGS = 0xc;

/** Required alignment of a ring base. */
export const NIC_RING_ALIGN = 128;
/** Most descriptors (segments) per frame. */
export const NIC_MAX_SEGMENTS = 8;
/** Largest buffer per descriptor. */
export const NIC_MAX_SEGMENT_SIZE = 4096;
/** Largest ring. */
export const NIC_MAX_RING = 4096;

/** The DMA constraints of the card: below 4 GiB, 8 segments of at most 4 KiB per frame. */
export const NIC_DMA: Readonly<DmaConstraints> = Object.freeze({
  maxAddress: DMA_32BIT,
  alignment: 1,
  boundary: 0,
  maxSegments: NIC_MAX_SEGMENTS,
  maxSegmentSize: NIC_MAX_SEGMENT_SIZE,
  maxTransfer: NIC_MAX_SEGMENTS * NIC_MAX_SEGMENT_SIZE,
});
