/**
 * What glibc loads by itself, with dlopen, rather than through a DT_NEEDED entry: an image whose
 * files need nothing more can still need these at run time. From glibc 2.36–2.41's sources.
 */

/**
 * libgcc_s.so.1: glibc unwinds a thread's stack with it (misc/unwind-link.c, dlopen of
 * LIBGCC_S_SO), for pthread_exit and pthread_cancel (nptl/pthread_exit.c, pthread_cancel.c;
 * thrd_exit is pthread_exit) and for backtrace (debug/backtrace.c). Without it, the first thread
 * to exit that way aborts the process ("libgcc_s.so.1 must be installed for pthread_exit to
 * work"): CPython's PyThread_exit_thread calls pthread_exit.
 */
export const unwinderSymbols = ['pthread_exit', 'pthread_cancel', 'thrd_exit', 'backtrace'];
export const unwinderSoname = 'libgcc_s.so.1';

/**
 * The gconv modules (<libdir>/gconv/): iconv_open loads one for each charset glibc does not
 * build in (iconv/gconv_builtin.h: UTF-8, UCS-2/4, ASCII, ISO-8859-1 are built in). The C and
 * C.UTF-8 locales, the only ones in these images, use only built-in charsets, so iconv_open is
 * the one way in.
 */
export const gconvSymbols = ['iconv_open'];

/** The symbols readElf is asked to watch for: importing any of them makes glibc load one of the above. */
export const glibcLoadingSymbols: ReadonlySet<string> = new Set([...unwinderSymbols, ...gconvSymbols]);

/**
 * The NSS modules an nsswitch.conf names (nss/nsswitch.c: `libnss_<service>.so.2` for each
 * service of each database line), loaded by getpwnam, getaddrinfo and the like.
 */
export function nssModules(nsswitchConf: string): string[] {
  const services = new Set<string>();
  for (const line of nsswitchConf.split('\n')) {
    const text = line.replace(/#.*/, '').trim();
    const colon = text.indexOf(':');
    if (colon < 0) continue;
    for (const word of text.slice(colon + 1).split(/\s+/)) {
      if (/^[a-z0-9_]+$/.test(word)) services.add(word);
    }
  }
  return [...services].sort().map((service) => `libnss_${service}.so.2`);
}
