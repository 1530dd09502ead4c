/** Flags the building commands share, and parsers for their values. */
import { Option, type Command } from 'commander';
import type { MediaTypeFlavour } from '../oci/image.js';
import { collect } from './run.js';

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
