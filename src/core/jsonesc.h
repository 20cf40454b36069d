/*
 * jsonesc: a string as a JSON string literal, into a caller's buffer, with
 * no allocation (the journal's events, JSON log lines). Bytes that are not
 * UTF-8 are written as \u00XX (their Latin-1 reading), so any input gives
 * valid JSON.
 */
#ifndef VAURIEN_JSONESC_H
#define VAURIEN_JSONESC_H

#include <stddef.h>

/* Writes s[0..n) quoted and escaped at out[*at..cap), NUL-terminated;
 * advances *at. A string that does not fit is cut at a character's end
 * and still closed with its quote (cap must leave room for 2 bytes and
 * the NUL after *at, else nothing is written). */
void jsonesc(char *out, size_t cap, size_t *at, const char *s, size_t n);

#endif
