/** Flags the building commands share, and parsers for their values. */
import { Option, type Command } from 'commander';
import { UserError } from '../errors.js';
import type { MediaTypeFlavour } from '../oci/image.js';
import { collect } from './run.js';

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

/** The image-config flags the building commands share; each command states its own defaults. */
export interface ImageConfigFlags {
  entrypoint?: string;
  cmd?: string;
  env: string[];
  label: string[];
  expose: string[];
  user?: string;
  workdir?: string;
  source?: string;
  revision?: string;
  mediaTypes: MediaTypeFlavour;
}

export function addImageConfigOptions(command: Command, help: { cmd?: string; user?: string; workdir?: string } = {}): Command {
  return command
    .option('--entrypoint <cmd>', 'entrypoint: a JSON array of strings, or one word')
    .option('--cmd <cmd>', help.cmd ?? 'command: a JSON array of strings, or one word')
    .option('--env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('--label <KEY=VALUE>', 'label (repeatable)', collect, [])
    .option('--expose <port>', 'exposed port, e.g. 8000 or 53/udp (repeatable)', collect, [])
    .option('--user <user>', help.user ?? 'user to run as, e.g. 65532 or 65532:65532')
    .option('--workdir <path>', help.workdir ?? 'working directory')
    .option('--source <url>', 'org.opencontainers.image.source annotation')
    .option('--revision <rev>', 'org.opencontainers.image.revision annotation')
    .addOption(mediaTypesOption());
}

export function mediaTypesOption(): Option {
  return new Option('--media-types <kind>', 'OCI or Docker v2 media types').choices(['oci', 'docker']).default('oci');
}
