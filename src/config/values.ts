/**
 * Parsers for values written on the command line (and in the environment), shared by the
 * commands; each failure names the flag.
 */
import { UserError } from '../errors.js';

/** Parses `["a","b"]` as a JSON array, anything else as one word. */
export function parseCommandLine(flag: string, text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  if (text.trim().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UserError(`${flag}: ${JSON.stringify(text)} looks like a JSON array but is not valid JSON`);
    }
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
      throw new UserError(`${flag}: expected a JSON array of strings`);
    }
    return parsed;
  }
  return [text];
}

export function parseKeyValues(flag: string, values: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new UserError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(value)}`);
    result[value.slice(0, at)] = value.slice(at + 1);
  }
  return result;
}

/** `8000`, `53/udp` → the config's ExposedPorts keys. */
export function parsePorts(values: string[]): Record<string, Record<string, never>> | undefined {
  if (values.length === 0) return undefined;
  const ports: Record<string, Record<string, never>> = {};
  for (const value of values) {
    const match = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(value);
    if (!match || Number(match[1]) > 65535) throw new UserError(`--expose: ${JSON.stringify(value)} is not PORT or PORT/tcp|udp|sctp`);
    ports[`${match[1]}/${match[2] ?? 'tcp'}`] = {};
  }
  return ports;
}
