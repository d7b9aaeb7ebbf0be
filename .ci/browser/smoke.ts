// Runs in a page: the package's root export, bundled for the browser, boots a
// machine and allocates; the page's text says how it went.
import { createMachine, Kernel, VM_NOSLEEP, Vmem } from "../../mod.ts";

declare const document: { body: { textContent: string } };

let result: string;
try {
  const ids = Vmem.create("ids", 1, 1000, 1);
  const id = ids.alloc(1, VM_NOSLEEP);
  ids.free(id, 1);
  const kernel = new Kernel(createMachine({ preset: "isa" }));
  const va = kernel.kmem.alloc(4000);
  kernel.pmap.write(va, new Uint8Array([1, 2, 3]));
  kernel.kmem.free(va, 4000);
  const leaks = Object.values(kernel.shutdown()).reduce((a, b) => a + b, 0);
  result = leaks === 0 && id === 1
    ? "browser smoke: ok"
    : `browser smoke: leaks ${leaks}, id ${id}`;
} catch (e) {
  result = `browser smoke: ${(e as Error).stack ?? e}`;
}
document.body.textContent = result;
