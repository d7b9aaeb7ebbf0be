// A user's program: the package imported by name, as README shows it.
import {
  createMachine,
  Kernel,
  loadRam,
  pglistAlloc,
  pglistFree,
  Uvm,
  VM_NOSLEEP,
  Vmem,
} from "@vmemu/vmemu";
import { VM_BESTFIT } from "@vmemu/vmemu/mm";
import { Ram } from "@vmemu/vmemu/machine";

const arena = Vmem.create("io", 2 ** 32, 2 ** 30, 4096);
const a = arena.alloc(3 * 4096, VM_NOSLEEP | VM_BESTFIT);
if (a !== 2 ** 32) throw new Error(`alloc gave ${a}`);
arena.free(a, 3 * 4096);
arena.check();

const uvm = new Uvm({ pageSize: 4096 });
loadRam(uvm, [{ base: 0x100000, size: 64 * 2 ** 20 }]);
const list = pglistAlloc(uvm, 16 * 4096, 0, 2 ** 24, 65536, 0, 1);
const runs: number[][] = list.runs();
pglistFree(uvm, list);

const kernel = new Kernel(createMachine({ preset: "pc", ramSize: 256 * 2 ** 20 }));
const va = kernel.kmem.alloc(1000);
kernel.pmap.write(va, new TextEncoder().encode("hello"));
kernel.kmem.free(va, 1000);
const leaks = kernel.shutdown();
if (Object.values(leaks).some((n) => n !== 0)) throw new Error(`leaks: ${JSON.stringify(leaks)}`);
if (!(kernel.machine.ram instanceof Ram)) throw new Error("the machine's RAM is not a Ram");
console.log(`consumer ok: pages ${JSON.stringify(runs)}, no leaks`);
