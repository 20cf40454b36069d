/*
 * opt: options that behaviors and protocols declare.
 *
 * A module lists its options as a const table of struct opt_decl; the
 * command line (--behavior-NAME-OPT), the INI file ([behavior:NAME]) and,
 * later, the API all set them through opt_parse(), so every way in accepts
 * the same spellings and gives the same errors.
 */
#ifndef VAURIEN_OPT_H
#define VAURIEN_OPT_H

#include <stdbool.h>
#include <stddef.h>

#define OPT_TYPES(X) \
    X(OPT_BOOL, "bool") \
    X(OPT_INT, "int") \
    X(OPT_FLOAT, "float") \
    X(OPT_STR, "str") \
    X(OPT_DIST, "distribution") /* a name of core/dist.h, kept as .s */

#define OPT_ENUM(e, s) e,
enum opt_type { OPT_TYPES(OPT_ENUM) };
#undef OPT_ENUM

#define OPT_MAX 12 /* options one module may declare */

struct opt_decl {
    const char *name;  /* snake_case, as in the original */
    enum opt_type type;
    const char *def;   /* default, in the text form opt_parse() reads */
    const char *help;
    double min, max;   /* bounds for int and float (min == max: none) */
};

union opt_val {
    bool b;
    long long i;
    double f;
    char *s; /* OPT_STR, OPT_DIST; owned by the holder of the value */
};

const char *opt_type_name(enum opt_type t);

/* Parses text as d declares it and stores the value in *out. A string value
 * is newly allocated; the old one in *out is freed. Returns 0, or -EINVAL
 * with a message in err. */
int opt_parse(const struct opt_decl *d, const char *text, union opt_val *out,
              char *err, size_t errlen);

/* Parses a boolean: true/false, yes/no, on/off, 1/0 (any case).
 * Returns 1, 0, or -1 if text is none of those. */
int opt_parse_bool(const char *text);

/* Sets vals[0..n) to the defaults of decls. */
void opt_defaults(const struct opt_decl *decls, union opt_val *vals);

/* Copies vals into dst (duplicating strings). */
void opt_copy(const struct opt_decl *decls, union opt_val *dst,
              const union opt_val *src);

/* Whether values of d are strings (.s), to be copied and freed. */
bool opt_is_str(const struct opt_decl *d);

/* Whether v is d's default value. */
bool opt_is_default(const struct opt_decl *d, const union opt_val *v);

/* Frees the strings in vals. */
void opt_free(const struct opt_decl *decls, union opt_val *vals);

/* Finds a declared option by name ('-' and '_' are the same).
 * Returns its index or -1. */
int opt_find(const struct opt_decl *decls, const char *name);

#endif
