/**
 * Boots the toy machine and its TypeScript kernel, runs a workload and
 * prints a summary. `deno run boot.ts --help` lists the flags.
 *
 * @module
 */

import process from "node:process";
import { main } from "./boot/cli.ts";

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
