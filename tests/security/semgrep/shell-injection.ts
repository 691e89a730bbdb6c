// Semgrep test target for rules/shell-injection.yaml (run with `semgrep --test`); never imported.
import { exec, execSync, spawn, execFile } from "node:child_process";
import * as childProcess from "child_process";
import cp from "node:child_process";

declare const branch: string;
declare const file: string;

export function unsafe(): void {
  // ruleid: wormhole.js.child-process-exec
  exec(`git checkout ${branch}`, (err) => console.error(err));
  // ruleid: wormhole.js.child-process-exec
  execSync("rm -rf " + file);
  // ruleid: wormhole.js.child-process-exec
  childProcess.exec(branch);
  // ruleid: wormhole.js.child-process-exec
  cp.execSync(`tar -xf ${file}`, { stdio: "inherit" });

  // ruleid: wormhole.js.child-process-shell-true
  spawn("git", ["checkout", branch], { shell: true });
  // ruleid: wormhole.js.child-process-shell-true
  childProcess.spawnSync(`ls ${file}`, { cwd: "/tmp", shell: true, stdio: "pipe" });
  // ruleid: wormhole.js.child-process-shell-true
  execFile("convert", [file], { shell: "/bin/bash" }, () => undefined);
}

export function safe(): void {
  // ok: wormhole.js.child-process-exec
  exec("git status", (err) => console.error(err));
  // ok: wormhole.js.child-process-exec
  execFile("git", ["checkout", branch]);
  // ok: wormhole.js.child-process-exec
  const m = /a(b)/.exec(branch);

  // ok: wormhole.js.child-process-shell-true
  spawn("git", ["checkout", branch], { stdio: "inherit" });
  // ok: wormhole.js.child-process-shell-true
  cp.spawnSync("ls", [file], { shell: false });
  void m;
}
