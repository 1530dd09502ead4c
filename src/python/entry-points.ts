/**
 * Console and GUI entry points (entry_points.txt) and the launcher scripts written for them, as
 * uv writes them (crates/uv-install-wheel/src/script.rs, wheel.rs `get_script_launcher`): the
 * same text byte for byte, so bin/ is what `uv sync` produces.
 */
import { UserError } from '../errors.js';

export interface EntryPointScript {
  name: string;
  module: string;
  function: string;
}

export interface EntryPoints {
  console: EntryPointScript[];
  gui: EntryPointScript[];
}

// The value grammar of the entry points spec, as uv's regex has it.
const valuePattern = /^(?<module>[\w\d_\-.]+)\s*:\s*(?<function>[\w\d_\-.]+)(?:\s*\[\s*(?<extras>(?:[^,]+,?\s*)+)\])?\s*$/u;

/**
 * Parses entry_points.txt: a case-sensitive INI file whose only delimiter is '='. Extras on an
 * entry point are ignored (as installers do). `pythonMinor` drives pip's versioned launcher.
 */
export function parseEntryPoints(text: string, pythonMinor: number, where: string): EntryPoints {
  const sections = new Map<string, [string, string | undefined][]>();
  let current: [string, string | undefined][] | undefined;
  for (const rawLine of text.split(/\r\n|\n|\r/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.*)\]$/.exec(line);
    if (section) {
      const name = section[1]!.trim();
      current = sections.get(name) ?? [];
      sections.set(name, current);
      continue;
    }
    if (!current) throw new UserError(`${where}: entry_points.txt has a line outside any section: ${JSON.stringify(line)}`);
    const eq = line.indexOf('=');
    if (eq < 0) current.push([line, undefined]);
    else current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }

  const read = (section: string): EntryPointScript[] => {
    // Later keys win, as in an INI map.
    const byName = new Map<string, string | undefined>();
    for (const [key, value] of sections.get(section) ?? []) byName.set(key, value);
    const scripts: EntryPointScript[] = [];
    for (const [name, value] of byName) {
      if (value === undefined) throw new UserError(`${where}: entry_points.txt [${section}] key ${name} must have a value`);
      const match = valuePattern.exec(value);
      if (!match?.groups) throw new UserError(`${where}: entry_points.txt has an invalid ${section} entry: ${JSON.stringify(value)}`);
      scripts.push({ name, module: match.groups.module!, function: match.groups.function! });
    }
    return scripts;
  };

  let consoleScripts = read('console_scripts');
  // pip's versioned launcher: drop wrong `pip3.N` entries, derive `pip3.<minor>` from `pip3`.
  consoleScripts = consoleScripts.filter((script) => {
    const dot = script.name.indexOf('.');
    if (dot < 0) return true;
    return !(script.name.slice(0, dot) === 'pip3' && /^\d+$/.test(script.name.slice(dot + 1)) && Number(script.name.slice(dot + 1)) < 256);
  });
  const pip3 = consoleScripts.find((script) => script.name === 'pip3');
  if (pip3) consoleScripts.push({ ...pip3, name: `pip3.${pythonMinor}` });
  return { console: consoleScripts, gui: read('gui_scripts') };
}

/**
 * The shebang for scripts: `#!<executable>`. A long (over 127 bytes with `#!` and newline) or
 * spaced path would need uv's `/bin/sh` trampoline, and a distroless image has no shell: refused.
 */
export function shebang(executable: string): string {
  if (2 + Buffer.byteLength(executable) + 1 > 127 || executable.includes(' ')) {
    throw new UserError(`the venv interpreter path ${JSON.stringify(executable)} is too long or has a space: a script shebang would need /bin/sh, which a distroless image does not have; choose a shorter venv root`);
  }
  return `#!${executable}`;
}

/** The launcher for one entry point (pip's distlib template as uv has it, without `import re`). */
export function launcherScript(script: EntryPointScript, shebangLine: string): string {
  const dot = script.function.indexOf('.');
  const importName = dot < 0 ? script.function : script.function.slice(0, dot);
  return (
    `${shebangLine}\n` +
    `# -*- coding: utf-8 -*-\n` +
    `import sys\n` +
    `from ${script.module} import ${importName}\n` +
    `if __name__ == "__main__":\n` +
    `    if sys.argv[0].endswith("-script.pyw"):\n` +
    `        sys.argv[0] = sys.argv[0][:-11]\n` +
    `    elif sys.argv[0].endswith(".exe"):\n` +
    `        sys.argv[0] = sys.argv[0][:-4]\n` +
    `    sys.exit(${script.function}())\n`
  );
}

const reservedNames = new Set(['python', 'pythonw', 'python3', 'graalpy', 'pypy', 'pypy2', 'pypy3']);

/** Whether a script name would overwrite one of the venv's interpreter links (uv refuses those). */
export function reservedScriptName(name: string): boolean {
  const normalized = name.toLowerCase().replace(/\.exe$/, '').replace(/\.py$/, '');
  return reservedNames.has(normalized) || /^python3\.\d+t?$/.test(normalized) || /^pythonw3\.\d+t$/.test(normalized);
}
