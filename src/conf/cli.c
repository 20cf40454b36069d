/*
 * cli: flag parsing, help and listings (see cli.h).
 */
#include "conf/cli.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "conf/ini.h"
#include "core/version.h"
#include "proto/proto.h"

/* Flags that set a [vaurien] setting; all take a value but the booleans. */
static const struct flag {
    const char *flag;
    const char *key;
    bool is_switch;  /* takes no value: sets true */
    const char *arg; /* name of the value in help */
    const char *help;
} flags[] = {
    { "--proxy", "proxy", false, "HOST:PORT",
      "Address to listen on (default localhost:8000)" },
    { "--backend", "backend", false, "HOST:PORT",
      "Address of the backend (default localhost:80)" },
    { "--protocol", "protocol", false, "NAME",
      "Protocol of the backend (default tcp)" },
    { "--behavior", "behavior", false, "SPEC",
      "Behavior mix, percent:name,... (default 100:dummy)" },
    { "--timeout", "timeout", false, "SECONDS",
      "Connect and idle timeout (default 30)" },
    { "--stay-connected", "stay_connected", true, NULL,
      "Never close idle connections" },
    { "--backlog", "backlog", false, "N",
      "Listen backlog (default 8192)" },
    { "--log-level", "log_level", false, "LEVEL",
      "debug, info, warning, error or critical (default info)" },
    { "--log-output", "log_output", false, "FILE",
      "Log file, - for stderr (default -)" },
    { "--seed", "seed", false, "N",
      "Seed of every random draw (default: random, logged at start)" },
    { "--max-connections", "max_connections", false, "N",
      "Connections one proxy serves at once (default 0: no limit)" },
    { "--max-connections-total", "max_connections_total", false, "N",
      "Connections all proxies serve at once (default 0: no limit)" },
    { "--overflow", "overflow", false, "POLICY",
      "Beyond a limit: close new clients at once, or leave them in the "
      "backlog (close or backlog; default close)" },
    { "--api-token", "api_token", false, "TOKEN",
      "Require 'Authorization: Bearer TOKEN' on the control API "
      "(or $VAURIEN_API_TOKEN)" },
    { "--proxy-tls", "proxy_tls", true, NULL,
      "Terminate TLS: clients speak TLS to the proxy" },
    { "--tls-cert", "tls_cert", false, "FILE",
      "Certificate chain (PEM) of --proxy-tls (default: one made at start "
      "for the listen name)" },
    { "--tls-key", "tls_key", false, "FILE",
      "Private key (PEM) of --tls-cert (default: in the --tls-cert file)" },
    { "--tls-ca-out", "tls_ca_out", false, "FILE",
      "Write the CA that signed the certificate made at start (to trust it)" },
    { "--backend-tls", "backend_tls", true, NULL,
      "Originate TLS: the proxy speaks TLS to the backend (SNI, verified)" },
    { "--backend-ca", "backend_ca", false, "FILE",
      "CA certificates (PEM) the backend's certificate is checked against "
      "(default: the system's)" },
    { "--backend-tls-insecure", "backend_tls_insecure", true, NULL,
      "Do not check the backend's certificate" },
    { "--backend-cert", "backend_cert", false, "FILE",
      "Client certificate (PEM) for a backend that asks for one" },
    { "--backend-key", "backend_key", false, "FILE",
      "Private key of --backend-cert (default: in the --backend-cert file)" },
    { "--starttls", "starttls", true, NULL,
      "Upgrade STARTTLS (smtp) and SSL requests (mysql, postgres) on both "
      "sides and keep framing, with the certificates of --tls-cert (or made "
      "at start) and --backend-ca" },
    { "--log-format", "log_format", false, "FORMAT",
      "text (the original's lines) or json (one object per line)" },
    { "--journal", "journal", false, "FILE",
      "Write every fault event to FILE as JSON lines (reopened on SIGHUP)" },
    { "--journal-size", "journal_size", false, "N",
      "Fault events kept for GET /events (default 10000; 0: none)" },
    { "--replay", "replay", false, "FILE",
      "Inject exactly the faults a recorded journal lists, by proxy, "
      "connection and request, whatever the seed" },
    { "--statsd", "statsd", true, NULL,
      "Send metrics to statsd (also --statsd.enabled)" },
    { "--statsd-host", "statsd_host", false, "HOST",
      "statsd's host (default localhost)" },
    { "--statsd-port", "statsd_port", false, "PORT",
      "statsd's UDP port (default 8125)" },
    { "--statsd-prefix", "statsd_prefix", false, "PREFIX",
      "Prefix of every metric name (default vaurien)" },
    { "--statsd-sample-rate", "statsd_sample_rate", false, "RATE",
      "Share of requests whose timings are sent (default 1.0)" },
    { "--http", "http", true, NULL,
      "Serve the control API (Vaurien's and Toxiproxy's)" },
    { "--http-host", "http_host", false, "HOST",
      "Address of the control API (default localhost)" },
    { "--http-port", "http_port", false, "PORT",
      "Port of the control API (default 8080)" },
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static const struct flag *find_flag(const char *name, size_t len)
{
    char alias[64];

    /* the original's spellings: --statsd.enabled, --statsd.host, ... */
    if (len > 9 && len < sizeof(alias) && strncmp(name, "--statsd.", 9) == 0) {
        memcpy(alias, name, len);
        alias[8] = '-';
        if (len == 16 && strncmp(name + 9, "enabled", 7) == 0)
            len = 8;
        for (size_t i = 9; i < len; i++)
            if (alias[i] == '_')
                alias[i] = '-';
        name = alias;
    }
    for (size_t i = 0; i < NFLAGS; i++)
        if (strlen(flags[i].flag) == len && strncmp(flags[i].flag, name, len) == 0)
            return &flags[i];
    return NULL;
}

/* Whether the n bytes at a spell name ('-' and '_' are the same). */
static bool same_name(const char *a, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i] == '-' ? '_' : a[i];
        if (x != name[i])
            return false;
    }
    return true;
}

/* Matches --behavior-NAME-OPT / --protocol-NAME-OPT (dashes or underscores
 * in OPT). On success sets *kind, *name and *opt (opt points into arg). */
static bool find_plugin_flag(const char *arg, size_t len, const char **kind,
                             const char **name, char *opt, size_t optlen)
{
    static const char *const kinds[] = { "behavior", "protocol" };

    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(kinds[k]);
        int n = k == 0 ? behav_count() : proto_count();
        if (len < 2 + kl + 1 || strncmp(arg + 2, kinds[k], kl) != 0 ||
            arg[2 + kl] != '-')
            continue;
        for (int i = 0; i < n; i++) {
            const char *pname = k == 0 ? behav_at(i)->name : proto_at(i)->name;
            const struct opt_decl *decls =
                k == 0 ? behav_at(i)->opts : proto_at(i)->opts;
            size_t pl = strlen(pname), off = 2 + kl + 1;
            if (len <= off + pl + 1 || !same_name(arg + off, pname, pl) ||
                arg[off + pl] != '-')
                continue;
            size_t ol = len - (off + pl + 1);
            if (ol >= optlen)
                continue;
            memcpy(opt, arg + off + pl + 1, ol);
            opt[ol] = '\0';
            if (opt_find(decls, opt) < 0 &&
                (k == 1 || opt_find(target_opts, opt) < 0))
                continue;
            *kind = kinds[k];
            *name = pname;
            return true;
        }
    }
    return false;
}

static enum cli_result fail(char *err, size_t errlen, const char *fmt,
                            const char *a)
{
    snprintf(err, errlen, fmt, a);
    return CLI_ERROR;
}

/* Whether argv[i] is --behavior-file or --protocol-file (NAME=PATH, as
 * the next argument or after '='); sets *value and moves *i past it. */
static bool script_flag(int argc, char **argv, int *i, bool *behavior,
                        const char **value)
{
    const char *a = argv[*i];

    for (int k = 0; k < 2; k++) {
        const char *flag = k == 0 ? "--behavior-file" : "--protocol-file";
        size_t n = strlen(flag);
        if (strncmp(a, flag, n) != 0 || (a[n] != '\0' && a[n] != '='))
            continue;
        *behavior = k == 0;
        if (a[n] == '=')
            *value = a + n + 1;
        else
            *value = *i + 1 < argc ? argv[++*i] : NULL;
        return true;
    }
    return false;
}

/* Loads --behavior-file / --protocol-file NAME=PATH.lua. */
static enum cli_result load_script_flag(bool behavior, const char *value,
                                        char *err, size_t errlen)
{
    const char *flag = behavior ? "--behavior-file" : "--protocol-file";
    const char *eq = value != NULL ? strchr(value, '=') : NULL;
    char name[128], why[600];
    int rc;

    if (eq == NULL || eq == value || eq[1] == '\0' ||
        (size_t)(eq - value) >= sizeof(name)) {
        snprintf(err, errlen, "%s expects NAME=PATH.lua", flag);
        return CLI_ERROR;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(eq - value), value);
    rc = behavior ? behav_lua_load_file(name, eq + 1, why, sizeof(why))
                  : proto_lua_load_file(name, eq + 1, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", flag, why);
        return CLI_ERROR;
    }
    return CLI_RUN;
}

enum cli_result cli_parse(int argc, char **argv, int first,
                          struct settings *st, char *err, size_t errlen)
{
    char why[600];

    /* Pass 0: custom behaviors and protocols, which the flags and the
     * file may name. */
    for (int i = first; i < argc; i++) {
        const char *value;
        bool behavior;
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        if (script_flag(argc, argv, &i, &behavior, &value) &&
            load_script_flag(behavior, value, err, errlen) != CLI_RUN)
            return CLI_ERROR;
    }
    settings_sync(st);

    /* Pass 1: what ends the run at once, and the config file. */
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(stdout);
            return CLI_EXIT;
        }
        if (strcmp(a, "--version") == 0) {
            version_print(stdout, "");
            return CLI_EXIT;
        }
        if (strcmp(a, "--list-behaviors") == 0) {
            cli_print_behaviors(stdout);
            return CLI_EXIT;
        }
        if (strcmp(a, "--list-protocols") == 0) {
            cli_print_protocols(stdout);
            return CLI_EXIT;
        }
        if (strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0) {
            const char *path = a[8] == '=' ? a + 9 : NULL;
            if (path == NULL) {
                if (i + 1 >= argc)
                    return fail(err, errlen, "%s", "--config expects a value");
                path = argv[++i];
            }
            if (strlen(path) >= sizeof(st->config))
                return fail(err, errlen, "%s", "--config: path too long");
            strcpy(st->config, path);
        }
    }
    if (st->config[0] != '\0' &&
        ini_load_file(st->config, st, err, errlen) < 0)
        return CLI_ERROR;

    /* Pass 2: the flags, in order; the last one given wins. */
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *eq, *value, *kind, *name;
        size_t len;
        const struct flag *f;
        char opt[128];

        bool behavior;

        if (strncmp(a, "--", 2) != 0)
            return fail(err, errlen, "unrecognized argument '%s'", a);
        if (script_flag(argc, argv, &i, &behavior, &value))
            continue; /* loaded in pass 0 */
        eq = strchr(a, '=');
        len = eq != NULL ? (size_t)(eq - a) : strlen(a);
        if (len == 8 && strncmp(a, "--config", 8) == 0) {
            if (eq == NULL)
                i++;
            continue;
        }
        f = find_flag(a, len);
        if (f == NULL && !find_plugin_flag(a, len, &kind, &name, opt,
                                           sizeof(opt))) {
            snprintf(why, sizeof(why), "%.*s", (int)len, a);
            return fail(err, errlen,
                        "unrecognized argument '%s' (see --help)", why);
        }
        if (f != NULL && f->is_switch) {
            value = eq != NULL ? eq + 1 : "true";
        } else if (eq != NULL) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                snprintf(why, sizeof(why), "%.*s", (int)len, a);
                return fail(err, errlen, "%s expects a value", why);
            }
            value = argv[++i];
        }
        int rc = f != NULL
                     ? settings_set(st, f->key, value, why, sizeof(why))
                     : settings_set_plugin(st, kind, name, opt, value, why,
                                           sizeof(why));
        if (rc < 0) {
            snprintf(err, errlen, "%.*s: %s", (int)len, a, why);
            return CLI_ERROR;
        }
    }
    /* A matcher names only what the protocol parses (the INI's too). */
    for (int i = 0; i < behav_count(); i++) {
        int pi = proto_find(st->protocol);
        if (pi >= 0 && target_check(st->behav[i].target, proto_at(pi), false,
                                    why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--behavior-%s-%s", behav_at(i)->name,
                     why); /* why: "match: ..." */
            return CLI_ERROR;
        }
    }
    /* flags come in any order: the mix is checked against the protocol
     * once both are known */
    if (mix_check_proto(&st->mix, st->protocol, why, sizeof(why)) < 0)
        return fail(err, errlen, "--behavior: %s", why);
    return CLI_RUN;
}

static void print_opts(FILE *out, const char *kind, const char *name,
                       const struct opt_decl *decls)
{
    for (int i = 0; decls[i].name != NULL; i++) {
        char flag[128];
        size_t n = (size_t)snprintf(flag, sizeof(flag), "--%s-", kind);
        for (const char *p = name; *p != '\0' && n + 1 < sizeof(flag); p++)
            flag[n++] = *p == '_' ? '-' : *p;
        if (n + 1 < sizeof(flag))
            flag[n++] = '-';
        for (const char *p = decls[i].name; *p != '\0' && n + 1 < sizeof(flag); p++)
            flag[n++] = *p == '_' ? '-' : *p;
        flag[n] = '\0';
        fprintf(out, "  %-34s %s (%s, default %s)\n", flag, decls[i].help,
                opt_type_name(decls[i].type), decls[i].def);
    }
}

void cli_print_help(FILE *out)
{
    fprintf(out,
            "usage: vaurien [options]\n"
            "       vaurien server [-host HOST] [-port PORT] [-config FILE] "
            "[-seed N]\n"
            "       vaurien ctl [--host URL] COMMAND ...   (vaurien ctl "
            "--help)\n"
            "       vaurien demo          a demo proxy in front of a "
            "built-in backend\n"
            "       vaurien demo-backend [--listen HOST:PORT]\n"
            "\n"
            "Vaurien is a chaos proxy: it sits between an application and a "
            "backend\nand makes the backend misbehave on purpose.\n\n"
            "options:\n");
    for (size_t i = 0; i < NFLAGS; i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s%s%s", flags[i].flag,
                 flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");
        fprintf(out, "  %-34s %s\n", left, flags[i].help);
    }
    fprintf(out,
            "  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n"
            "  %-34s %s\n",
            "--config FILE", "INI configuration file; flags win over it",
            "--list-behaviors", "List behaviors and their options",
            "--list-protocols", "List protocols and their options",
            "--version", "Print the version", "-h, --help", "Print this help",
            "--behavior-NAME-OPT VALUE", "Set an option of a behavior");
    fprintf(out, "  %-34s %s\n  %-34s %s\n",
            "--behavior-file NAME=FILE.lua",
            "Load a custom behavior written in Lua (repeatable)",
            "--protocol-file NAME=FILE.lua",
            "Load a custom protocol written in Lua (repeatable)");
    fprintf(out, "  %-34s %s\n\noptions every behavior takes "
            "(--behavior-NAME-OPT):\n",
            "--protocol-NAME-OPT VALUE", "Set an option of a protocol");
    for (int i = 0; target_opts[i].name != NULL; i++)
        fprintf(out, "  %-34s %s (%s, default %s)\n", target_opts[i].name,
                target_opts[i].help, opt_type_name(target_opts[i].type),
                target_opts[i].def);
    fprintf(out, "\nbehavior options:\n");
    for (int i = 0; i < behav_count(); i++)
        print_opts(out, "behavior", behav_at(behav_sorted(i))->name,
                   behav_at(behav_sorted(i))->opts);
    fprintf(out, "\nprotocol options:\n");
    for (int i = 0; i < proto_count(); i++)
        print_opts(out, "protocol", proto_at(i)->name, proto_at(i)->opts);
    fprintf(out, "\nbehaviors: %s\nprotocols: %s\n", behav_names(),
            proto_names());
}

void cli_print_behaviors(FILE *out)
{
    for (int i = 0; i < behav_count(); i++) {
        const struct behav_ops *b = behav_at(behav_sorted(i));
        fprintf(out, "%s: %s\n", b->name, b->help);
        print_opts(out, "behavior", b->name, b->opts);
    }
}

void cli_print_protocols(FILE *out)
{
    for (int i = 0; i < proto_count(); i++) {
        fprintf(out, "%s: %s\n", proto_at(i)->name, proto_at(i)->help);
        print_opts(out, "protocol", proto_at(i)->name, proto_at(i)->opts);
    }
}
