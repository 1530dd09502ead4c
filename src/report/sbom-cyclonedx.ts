/**
 * An SbomModel as CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/). The image is the
 * BOM's subject (metadata.component, type container); every component is listed with its purl,
 * CPE, hashes and licenses; the layer that holds it is in its properties (`uvimage:layer:digest`,
 * `…:diffID`, `…:role`), beside syft's own location properties (`syft:location:0:layerID` is a
 * diff_id, `…:path` the record) so syft keeps them when it converts the document. The
 * dependency graph says the image holds each component and the runtime links in its libraries.
 *
 * Deterministic: the serial number is a name-based UUID of the platform manifest's digest, the
 * timestamp the build's, the order the model's.
 */
import { combinedExpression, isSingleLicenseId, type License } from './sbom-licenses.js';
import { imagePurl, nameBasedUuid, type SbomComponent, type SbomModel } from './sbom.js';

export const cycloneDxMediaType = 'application/vnd.cyclonedx+json';

type Licenses = ({ license: { id: string } | { name: string } } | { expression: string })[];

/** CycloneDX's licenses: one SPDX id as a license, several or a compound as one expression, names as names. */
function cycloneDxLicenses(licenses: readonly License[]): Licenses | undefined {
  if (licenses.length === 0) return undefined;
  const expression = combinedExpression(licenses);
  if (expression !== undefined) {
    // LicenseRef-… is no SPDX id CycloneDX's enum knows: it goes as an expression.
    return isSingleLicenseId(expression) && !expression.startsWith('LicenseRef-') ? [{ license: { id: expression } }] : [{ expression }];
  }
  // A mix of expressions and names cannot be one expression (the schema takes one expression or a list of licenses).
  return licenses.map((license) => ({ license: 'expression' in license && isSingleLicenseId(license.expression) && !license.expression.startsWith('LicenseRef-') ? { id: license.expression } : { name: 'expression' in license ? license.expression : license.name } }));
}

function componentType(component: SbomComponent): string {
  return component.kind === 'project' || component.kind === 'runtime' ? 'application' : 'library';
}

function properties(pairs: readonly [string, string][]): { name: string; value: string }[] {
  return [...pairs].sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0)).map(([name, value]) => ({ name, value }));
}

export function renderCycloneDx(model: SbomModel): Record<string, unknown> {
  const imageRef = `image:${model.image.manifest.digest}`;
  const subject = {
    type: 'container',
    'bom-ref': imageRef,
    name: model.image.name,
    version: model.image.manifest.digest,
    purl: imagePurl(model.image),
    hashes: [{ alg: 'SHA-256', content: model.image.manifest.digest.slice('sha256:'.length) }],
    properties: properties([
      ['uvimage:image:platform', [model.image.platform.os, model.image.platform.architecture, model.image.platform.variant].filter(Boolean).join('/')],
      ['uvimage:image:mediaType', model.image.manifest.mediaType],
      ...model.image.layers.map((layer): [string, string] => [`uvimage:image:layer:${layer.index}`, `${layer.digest} ${layer.diffId}${layer.role ? ` ${layer.role}` : ''}`]),
    ]),
  };
  const components: Record<string, unknown>[] = model.components.map((component) => {
    const entry: Record<string, unknown> = {
      type: componentType(component),
      'bom-ref': component.ref,
      name: component.name,
      version: component.version,
    };
    if (component.description) entry.description = component.description;
    if (component.sha256) entry.hashes = [{ alg: 'SHA-256', content: component.sha256 }];
    const licenses = cycloneDxLicenses(component.licenses);
    if (licenses) entry.licenses = licenses;
    if (component.cpe) entry.cpe = component.cpe;
    entry.purl = component.purl;
    const pairs: [string, string][] = [...component.properties];
    if (component.layer) pairs.push(['syft:location:0:layerID', component.layer.diffId]);
    if (component.path) pairs.push(['syft:location:0:path', `/${component.path}`]);
    entry.properties = properties(pairs);
    return entry;
  });
  if (model.os) {
    components.push({ type: 'operating-system', 'bom-ref': `os:${model.os.id}@${model.os.version}`, name: model.os.id, version: model.os.version });
  }
  const linked = new Map<string, string[]>();
  for (const component of model.components) if (component.linkedInto) linked.set(component.linkedInto, [...(linked.get(component.linkedInto) ?? []), component.ref]);
  const dependencies = [
    { ref: imageRef, dependsOn: model.components.filter((component) => !component.linkedInto).map((component) => component.ref) },
    ...[...linked].map(([ref, dependsOn]) => ({ ref, dependsOn })),
  ];
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${nameBasedUuid(`uvimage:cyclonedx:${model.image.manifest.digest}`)}`,
    version: 1,
    metadata: {
      timestamp: model.created,
      tools: { components: [{ type: 'application', name: model.tool.name, version: model.tool.version }] },
      component: subject,
      ...(model.properties.length > 0 ? { properties: properties(model.properties) } : {}),
    },
    components,
    dependencies,
  };
}
