import { Command } from 'commander';
import { UserError } from '../../errors.js';
import type { MediaTypeFlavour } from '../../oci/image.js';
import { hostPlatform, parsePlatformList } from '../../oci/platform.js';
import { buildDebianBaseArtifact, parseBaseName, standaloneBaseNames } from '../../base/build.js';
import { parseArchitecture } from '../../facts/architectures.js';
import { parseDebianSuite } from '../../facts/debian-suites.js';
import { mediaTypesOption } from '../parse.js';
import { addOutputOptions, openImageRun, type CommonOptions } from '../run.js';

interface BaseOptions extends CommonOptions {
  suite: string;
  platform?: string;
  mirror?: string;
  securityMirror?: string;
  nonroot?: boolean;
  layerPerPackage?: boolean;
  offline?: boolean;
  lock?: string;
  updateLock?: boolean;
  mediaTypes: MediaTypeFlavour;
}

async function baseCommand(name: string, options: BaseOptions): Promise<void> {
  const base = parseBaseName(name);
  const suite = parseDebianSuite(options.suite);
  const platforms = options.platform ? parsePlatformList(options.platform) : [hostPlatform()];
  const arches = platforms.map((platform) => {
    if (platform.os !== 'linux') throw new UserError(`--platform: Debian bases are linux only, got ${platform.os}`);
    return parseArchitecture(platform.architecture, 'Debian architecture');
  });
  const run = await openImageRun(options, { platforms });
  const { artifact } = await buildDebianBaseArtifact({
    base,
    suite,
    arches,
    store: run.store,
    mirror: options.mirror,
    securityMirror: options.securityMirror,
    offline: options.offline,
    lockPath: options.lock,
    updateLock: options.updateLock,
    nonroot: options.nonroot,
    layering: options.layerPerPackage ? 'per-package' : 'grouped',
    mediaTypes: options.mediaTypes,
    progress: run.progress,
  });
  await run.emit(artifact);
}

export function baseCommandDefinition(): Command {
  return addOutputOptions(
    new Command('base')
      .description("build a distroless base (distroless' static, base-nossl, base, cc) or Debian's CPython on cc, from signed Debian packages")
      .argument('<flavour>', `one of: ${standaloneBaseNames.join(', ')}`)
      .option('--suite <suite>', 'Debian suite: trixie or bookworm', 'trixie')
      .option('--platform <list>', 'target platforms, comma separated: linux/amd64, linux/arm64 (default: this host)')
      .option('--mirror <url>', 'Debian archive (or a snapshot.debian.org URL; default $UVIMAGE_DEBIAN_MIRROR, else deb.debian.org)')
      .option('--security-mirror <url>', 'Debian security archive (default $UVIMAGE_DEBIAN_SECURITY_MIRROR, else security.debian.org)')
      .option('--nonroot', 'run as nonroot (65532) in /home/nonroot, like distroless :nonroot')
      .option('--layer-per-package', 'one layer per package instead of a few layers grouped by how often they change')
      .option('--offline', 'use only the cache: no request to the Debian archive')
      .option('--lock <path>', 'Debian lock file to follow (written when missing); {arch} in the path for several platforms')
      .option('--update-lock', 'resolve again and rewrite the lock')
      .addOption(mediaTypesOption()),
  ).action(baseCommand);
}
