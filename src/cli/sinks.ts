import { text } from 'node:stream/consumers';
import { UserError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import type { Sink } from '../oci/sink.js';
import { DockerArchiveSink } from '../oci/sinks/docker-archive.js';
import { DockerDaemonSink } from '../oci/sinks/docker-daemon.js';
import { OciLayoutSink } from '../oci/sinks/oci-layout.js';
import type { BlobStore } from '../oci/store.js';
import type { RegistryClient, RegistryClientOptions } from '../registry/client.js';
import { explicitCredentialsFromEnv } from '../registry/credentials.js';
import { RegistrySink } from '../registry/push.js';
import { parseReference } from '../registry/reference.js';

/** The output flags every building command shares (docker buildx's names, plus --oci and --tar). */
export interface OutputOptions {
  tag: string[];
  push?: boolean;
  load?: boolean;
  oci?: string;
  tar?: string;
  loadPlatform?: string;
  insecureRegistry: string[];
  registryUsername?: string;
  registryPasswordStdin?: boolean;
  /** The layer cache in a registry (--cache-repo), written with the tags' credentials. */
  layerCache?: { registry: string };
}

/**
 * Registry settings from flags and env. Explicit credentials (flags, else UVIMAGE_REGISTRY_*)
 * apply to the registries of the tags and of the layer cache only: they are for pushing, and must
 * never be sent to a base image's registry, which may be someone else's.
 */
export async function registryOptionsFrom(options: OutputOptions, env: NodeJS.ProcessEnv = process.env): Promise<RegistryClientOptions> {
  let explicit = explicitCredentialsFromEnv(env);
  if (options.registryUsername || options.registryPasswordStdin) {
    if (!options.registryUsername || !options.registryPasswordStdin) {
      throw new UserError('--registry-username and --registry-password-stdin go together');
    }
    const password = (await text(process.stdin)).replace(/\r?\n$/, '');
    if (!password) throw new UserError('--registry-password-stdin: standard input was empty');
    explicit = { username: options.registryUsername, password };
  }
  const credentials: Record<string, { username: string; password: string }> = {};
  if (explicit) for (const tag of options.tag) credentials[parseReference(tag).registry] = explicit;
  // The layer cache is written like a push target, with the same credentials (docker's config otherwise).
  if (explicit && options.layerCache) credentials[options.layerCache.registry] = explicit;
  return { insecureRegistries: options.insecureRegistry, credentials, env };
}

/** The sinks the flags ask for; at least one is required so a build is never thrown away. */
export function openSinks(options: OutputOptions, client: RegistryClient, store: BlobStore, outputs: 'required' | 'optional' = 'required'): Sink[] {
  for (const tag of options.tag) parseReference(tag); // a bad tag fails before any work is done
  const platform = options.loadPlatform ? parsePlatform(options.loadPlatform, '--load-platform') : undefined;
  const sinks: Sink[] = [];
  if (options.push) {
    if (options.tag.length === 0) throw new UserError('--push needs at least one -t registry/repository:tag');
    sinks.push(new RegistrySink([], { client }));
  }
  if (options.oci) sinks.push(new OciLayoutSink(options.oci, { store }));
  if (options.tar) sinks.push(new DockerArchiveSink(options.tar, { platform }));
  if (options.load) sinks.push(new DockerDaemonSink({ platform }));
  if (sinks.length === 0 && outputs === 'required') throw new UserError('nothing to do with the image: give --push, --load, --oci DIR and/or --tar FILE');
  return sinks;
}
