/**
 * Licenses for SBOMs, read from what the image holds:
 *
 *   Debian     `usr/share/doc/<pkg>/copyright` in the machine-readable form (DEP-5, "Machine-readable
 *              debian/copyright file", copyright-format/1.0): the License of every Files paragraph
 *              (the first line of the field is the license's short name or an expression of them).
 *              A copyright file in free form says nothing a machine can take, so nothing is taken.
 *   Python     the dist-info METADATA: `License-Expression` (core metadata 2.4, PEP 639: an SPDX
 *              expression), else `License` when it is a short name, else the `License ::`
 *              classifiers (each one's last part, as packaging's trove classifiers name them).
 *
 * Each license is kept as an SPDX expression when it is one (Debian's short names translated as
 * DEP-5 defines them: GPL-2+ is GPL-2.0-or-later, Expat is MIT, "or"/"and"/"with … exception"
 * are the operators), else as a name. Which form a document takes is the renderers' business.
 */
import parseSpdxExpression from 'spdx-expression-parse';
import { parseStanzas } from '../debian/control.js';

export type License = { expression: string } | { name: string };

/** The licenses of a DEP-5 copyright file, in the order first given; undefined for a free-form file. */
export function debianCopyrightLicenses(text: string): License[] | undefined {
  const stanzas = parseStanzas(text);
  const header = stanzas[0];
  // DEP-5's Format URL: copyright-format/1.0, and the dep5 draft URLs older packages still give.
  if (!header?.Format || !/copyright-format\/1\.0|dep-?5/i.test(header.Format)) return undefined;
  const names: string[] = [];
  for (const stanza of stanzas) {
    if (stanza.Files === undefined && stanza !== header) continue;
    const name = stanza.License?.split('\n', 1)[0]?.trim();
    if (name && !names.includes(name)) names.push(name);
  }
  return names.map(debianLicense);
}

/** A DEP-5 short name (or expression of them) as SPDX where DEP-5's names map onto SPDX's. */
export function debianLicense(text: string): License {
  const translated = text
    .replace(/\s*,?\s+with\s+(\S+?)\s+exception\b/gi, (_match, exception: string) => ` WITH ${spdxException(exception)}`)
    .replace(/\s+\|\s+|\s+or\s+/gi, ' OR ')
    .replace(/\s*,?\s+and\s+/gi, ' AND ')
    .split(/(\s+|\(|\))/)
    .map((token) => (/^(AND|OR|WITH|\s*|\(|\))$/.test(token) ? token : debianShortName(token)))
    .join('');
  return asLicense(translated, text);
}

/** Exceptions DEP-5 names by their short form: `GPL-2+ with OpenSSL exception`. */
function spdxException(name: string): string {
  const known: Record<string, string> = { font: 'Font-exception-2.0', autoconf: 'Autoconf-exception-3.0', gcc: 'GCC-exception-3.1', bison: 'Bison-exception-2.2', classpath: 'Classpath-exception-2.0' };
  return known[name.toLowerCase()] ?? `${name}-exception`;
}

/** DEP-5's short names that differ from SPDX identifiers (copyright-format/1.0, "License specification"). */
function debianShortName(token: string): string {
  const gnu = /^(GPL|LGPL|AGPL|GFDL)-(\d(?:\.\d)?)(\+)?$/i.exec(token);
  if (gnu) {
    const version = gnu[2]!.includes('.') ? gnu[2]! : `${gnu[2]}.0`;
    return `${gnu[1]!.toUpperCase()}-${version}${gnu[3] ? '-or-later' : '-only'}`;
  }
  const renamed: Record<string, string> = {
    expat: 'MIT',
    'bsd-2-clause': 'BSD-2-Clause',
    'bsd-3-clause': 'BSD-3-Clause',
    'bsd-4-clause': 'BSD-4-Clause',
    'apache-2.0': 'Apache-2.0',
    'mpl-2.0': 'MPL-2.0',
    'mpl-1.1': 'MPL-1.1',
    'artistic-2.0': 'Artistic-2.0',
    artistic: 'Artistic-1.0-Perl',
    zlib: 'Zlib',
    isc: 'ISC',
    'cc0-1.0': 'CC0-1.0',
    'public-domain': 'LicenseRef-public-domain',
    'psf-2': 'PSF-2.0',
    python: 'Python-2.0',
  };
  return renamed[token.toLowerCase()] ?? token;
}

/** A license text as an SPDX expression when it parses as one, else as the name given. */
export function asLicense(text: string, name = text): License {
  const trimmed = text.trim();
  if (trimmed === '') return { name: name.trim() };
  try {
    parseSpdxExpression(trimmed);
    return { expression: trimmed };
  } catch {
    return { name: name.trim() };
  }
}

/** The license of a Python distribution from its METADATA header; empty when it says none. */
export function pythonMetadataLicenses(metadata: string): License[] {
  const header = metadata.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const field = (name: string) => {
    const match = new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t]+.*)*)`, 'mi').exec(header);
    return match?.[1]?.trim();
  };
  const expression = field('License-Expression');
  if (expression) return [asLicense(expression)];
  const license = field('License');
  // The License field often holds the whole license text: only a one-line value is a name.
  if (license && !license.includes('\n') && license.length <= 100 && !/^unknown$/i.test(license)) return [asLicense(license)];
  const classifiers = [...header.matchAll(/^Classifier:[ \t]*License ::(.+)$/gim)].map((match) => match[1]!.split('::').pop()!.trim());
  return [...new Set(classifiers)].filter((name) => name !== 'OSI Approved').map((name) => classifierLicense(name));
}

/** The common trove license classifiers as SPDX identifiers (packaging's classifier list names them). */
function classifierLicense(name: string): License {
  const known: Record<string, string> = {
    'MIT License': 'MIT',
    'Apache Software License': 'Apache-2.0',
    'Python Software Foundation License': 'PSF-2.0',
    'Mozilla Public License 2.0 (MPL 2.0)': 'MPL-2.0',
    'ISC License (ISCL)': 'ISC',
    'The Unlicense (Unlicense)': 'Unlicense',
    'GNU General Public License v2 (GPLv2)': 'GPL-2.0-only',
    'GNU General Public License v3 (GPLv3)': 'GPL-3.0-only',
    'GNU Lesser General Public License v3 (LGPLv3)': 'LGPL-3.0-only',
    'GNU Library or Lesser General Public License (LGPL)': 'LGPL-2.0-or-later',
  };
  // "BSD License" names no clause count: it stays a name rather than a guess.
  const id = known[name];
  return id ? { expression: id } : { name };
}

/** All licenses as one SPDX expression when every one is an expression; undefined otherwise. */
export function combinedExpression(licenses: readonly License[]): string | undefined {
  if (licenses.length === 0 || !licenses.every((license) => 'expression' in license)) return undefined;
  const expressions = licenses.map((license) => (license as { expression: string }).expression);
  if (expressions.length === 1) return expressions[0];
  return expressions.map((expression) => (/\s/.test(expression) ? `(${expression})` : expression)).join(' AND ');
}

/** Whether an expression is a single license identifier (no operator). */
export function isSingleLicenseId(expression: string): boolean {
  return !/\s|\(/.test(expression);
}
