/*
 * version: what `vaurien --version` and `vaurien server -version` print.
 *
 *   vaurien 2.0.0[SUFFIX]        the first line, as before (clients parse it)
 *   commit: f176b83c1a2b         the commit built from (cmake/commit.cmake),
 *                                "unknown" for a tree without git
 *   libevent: 2.1.12-stable      one line per library, the version built
 *   ...                          with, and "(running X)" when the one
 *                                loaded differs
 */
#ifndef VAURIEN_VERSION_H
#define VAURIEN_VERSION_H

#include <stdio.h>

/* Prints the lines above to out; suffix follows the release on the first
 * line (server mode's " (Toxiproxy API 2.12.0)"), "" for none. */
void version_print(FILE *out, const char *suffix);

#endif
