/* SPDX-License-Identifier: MIT */
/* kos dbx create | check | apply | hash: KEK-signed dbx appends that revoke a UKI's
 * Authenticode hash or a db certificate, and the device-side check that an
 * update does not revoke a UKI the device needs (lib/device/dbx.h).
 *
 * create builds the .auth with efitools (hash-to-efi-sig-list,
 * cert-to-efi-sig-list, sign-efi-sig-list -a), the tools the firmware
 * community keeps and the dev key set already uses, rather than a second
 * hand-written PKCS#7 signer; the one piece written here, the Authenticode
 * hash the device compares with, is checked against hash-to-efi-sig-list's
 * on every create, so the two can never silently disagree. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dbx.h"
#include "kos.h"

#define DBX_MAX_ITEMS 16
/* The owner GUID the signature lists carry when --owner is not given. */
#define KOS_DBX_DEFAULT_OWNER "4b4f5300-6462-7800-8000-000000000001"

static int read_binary(const char *path, size_t cap, uint8_t **ret, size_t *ret_len) {
        char *data = NULL;
        int r = read_path(path, cap, &data, ret_len);

        *ret = (uint8_t *)data;
        if (r < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, r == -EFBIG ? "too large" : file_error_string(r));
        return EXIT_OK;
}

static int dbx_hash(int argc, char **argv) {
        if (wants_help(argc, argv)) {
                printf("Usage: kos dbx hash UKI\n\nPrints the Authenticode SHA-256 of a PE image: what a dbx entry revoking it holds.\n");
                return EXIT_OK;
        }
        if (argc != 2)
                return usage_error("dbx hash", "expected UKI");
        _cleanup_free_ uint8_t *pe = NULL;
        uint8_t digest[KOS_SHA256_LEN];
        char hex[KOS_SHA256_HEX_LEN + 1];
        size_t len;
        int c = read_binary(argv[1], KOS_UKI_MAX, &pe, &len);

        if (c != EXIT_OK)
                return c;
        if (kos_authenticode_sha256(pe, len, digest) < 0)
                return fail(EXIT_INVALID, "%s is not a PE image", argv[1]);
        kos_hex_encode(digest, KOS_SHA256_LEN, hex);
        printf("%s\n", hex);
        return EXIT_OK;
}

/* hash-to-efi-sig-list UKI ESL, then: the hash it wrote is ours. */
/* (hash-to-efi-sig-list takes no owner GUID: its entries carry its own.) */
static int uki_list(const char *uki, const char *esl) {
        char *argv[] = {"hash-to-efi-sig-list", (char *)uki, (char *)esl, NULL};
        _cleanup_free_ uint8_t *pe = NULL, *list = NULL;
        uint8_t digest[KOS_SHA256_LEN];
        char hex[KOS_SHA256_HEX_LEN + 1], out[512];
        size_t pe_len, list_len;
        int c;

        if ((c = read_binary(uki, KOS_UKI_MAX, &pe, &pe_len)) != EXIT_OK)
                return c;
        if (kos_authenticode_sha256(pe, pe_len, digest) < 0)
                return fail(EXIT_INVALID, "%s is not a PE image", uki);
        if (run_program(argv, out, sizeof out) < 0)
                return fail(EXIT_USAGE, "hash-to-efi-sig-list failed for %s (package efitools)", uki);
        if ((c = read_binary(esl, 4096, &list, &list_len)) != EXIT_OK)
                return c;
        /* One EFI_CERT_SHA256 list: 28-byte header, owner GUID, the hash. */
        if (list_len != 28 + 16 + KOS_SHA256_LEN || memcmp(list + 28 + 16, digest, KOS_SHA256_LEN) != 0)
                return fail(EXIT_USAGE, "hash-to-efi-sig-list and kos disagree on the Authenticode hash of %s", uki);
        kos_hex_encode(digest, KOS_SHA256_LEN, hex);
        printf("revokes UKI %s: Authenticode sha256 %s\n", uki, hex);
        return EXIT_OK;
}

static int cert_list(const char *owner, const char *cert, const char *esl) {
        char *argv[] = {"cert-to-efi-sig-list", "-g", (char *)owner, (char *)cert, (char *)esl, NULL};

        if (run_program(argv, NULL, 0) < 0)
                return fail(EXIT_USAGE, "cert-to-efi-sig-list failed for %s (a PEM certificate? package efitools)", cert);
        printf("revokes certificate %s\n", cert);
        return EXIT_OK;
}

static int append_file(int out_fd, const char *path) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int c = read_binary(path, KOS_DBX_UPDATE_MAX, &data, &len);

        if (c != EXIT_OK)
                return c;
        if (write(out_fd, data, len) != (ssize_t)len)
                return fail(EXIT_USAGE, "cannot write %s: %m", path);
        return EXIT_OK;
}

struct dbx_create {
        const char *kek_key, *kek_cert, *owner, *output;
        const char *ukis[DBX_MAX_ITEMS], *certs[DBX_MAX_ITEMS];
        size_t n_ukis, n_certs;
};

/* In dir: one list per item, concatenated into dbx.esl, signed into output. */
static int build_auth(const struct dbx_create *o, const char *dir) {
        char esl[4200], all[4200];
        int c = EXIT_OK;

        snprintf(all, sizeof all, "%s/dbx.esl", dir);
        _cleanup_close_ int fd = open(all, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return fail(EXIT_USAGE, "cannot create %s: %m", all);
        for (size_t i = 0; c == EXIT_OK && i < o->n_ukis + o->n_certs; i++) {
                snprintf(esl, sizeof esl, "%s/%zu.esl", dir, i);
                c = i < o->n_ukis ? uki_list(o->ukis[i], esl) : cert_list(o->owner, o->certs[i - o->n_ukis], esl);
                if (c == EXIT_OK)
                        c = append_file(fd, esl);
        }
        if (c != EXIT_OK)
                return c;
        char *argv[] = {"sign-efi-sig-list", "-a", "-k", (char *)o->kek_key, "-c", (char *)o->kek_cert, "dbx", all,
                        (char *)o->output, NULL};
        char out[1024];
        if (run_program(argv, out, sizeof out) < 0)
                return fail(EXIT_USAGE, "sign-efi-sig-list failed (the KEK key and certificate? package efitools)");
        return EXIT_OK;
}

/* The .auth carries exactly the lists built: what the device will check. */
static int check_written(const char *output, const char *dir) {
        _cleanup_free_ uint8_t *auth = NULL, *lists = NULL;
        const uint8_t *payload;
        size_t auth_len, lists_len, payload_len;
        char all[4200];
        int c;

        snprintf(all, sizeof all, "%s/dbx.esl", dir);
        if ((c = read_binary(output, KOS_DBX_UPDATE_MAX, &auth, &auth_len)) != EXIT_OK ||
            (c = read_binary(all, KOS_DBX_UPDATE_MAX, &lists, &lists_len)) != EXIT_OK)
                return c;
        if (kos_dbx_auth_payload(auth, auth_len, &payload, &payload_len) < 0 || payload_len != lists_len ||
            memcmp(payload, lists, lists_len) != 0)
                return fail(EXIT_USAGE, "%s is not the signed append of the lists built", output);
        return EXIT_OK;
}

static void remove_tree(const char *dir, size_t n) {
        char path[4200];

        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof path, "%s/%zu.esl", dir, i);
                unlink(path);
        }
        snprintf(path, sizeof path, "%s/dbx.esl", dir);
        unlink(path);
        rmdir(dir);
}

static int dbx_create(int argc, char **argv) {
        static const struct option options[] = {{"kek-key", required_argument, NULL, 'k'},
                                                {"kek-cert", required_argument, NULL, 'c'},
                                                {"owner", required_argument, NULL, 'g'},
                                                {"uki", required_argument, NULL, 'u'},
                                                {"cert", required_argument, NULL, 'x'},
                                                {"output", required_argument, NULL, 'o'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        struct dbx_create o = {.owner = KOS_DBX_DEFAULT_OWNER};
        int c;

        while ((c = getopt_long(argc, argv, "k:c:g:u:x:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos dbx create --kek-key KEK.key --kek-cert KEK.crt [--uki UKI]... [--cert DB.crt]...\n"
                               "                      [--owner GUID] -o DBX-APPEND.auth\n\n"
                               "Writes a KEK-signed append to dbx (EFI_VARIABLE_APPEND_WRITE, as\n"
                               "sign-efi-sig-list -a) revoking each UKI by its Authenticode SHA-256 and each\n"
                               "certificate (PEM) as EFI_CERT_X509 (owned by --owner). Needs efitools. Check it against the UKIs a\n"
                               "device boots with kos dbx check before shipping it.\n");
                        return EXIT_OK;
                case 'k': o.kek_key = optarg; break;
                case 'c': o.kek_cert = optarg; break;
                case 'g': o.owner = optarg; break;
                case 'o': o.output = optarg; break;
                case 'u':
                case 'x':
                        if ((c == 'u' ? o.n_ukis : o.n_certs) >= DBX_MAX_ITEMS)
                                return usage_error("dbx create", "at most %d of --uki and of --cert", DBX_MAX_ITEMS);
                        if (c == 'u')
                                o.ukis[o.n_ukis++] = optarg;
                        else
                                o.certs[o.n_certs++] = optarg;
                        break;
                default:
                        return usage_error("dbx create", "unknown option");
                }
        }
        if (!o.kek_key || !o.kek_cert || !o.output || o.n_ukis + o.n_certs == 0 || optind != argc)
                return usage_error("dbx create", "expected --kek-key, --kek-cert, -o and at least one --uki or --cert");
        char dir[] = "/tmp/kos-dbx-XXXXXX";
        if (!mkdtemp(dir))
                return fail(EXIT_USAGE, "cannot create a temporary directory: %m");
        c = build_auth(&o, dir);
        if (c == EXIT_OK)
                c = check_written(o.output, dir);
        remove_tree(dir, o.n_ukis + o.n_certs);
        if (c == EXIT_OK)
                printf("wrote %s\n", o.output);
        return c;
}

/* The signed UKIs the device needs: their hashes and certificates. */
static int load_ukis(const char *const *ukis, size_t n, struct kos_uki_identity *ids, size_t *ret_loaded) {
        int c = EXIT_OK, r;

        for (*ret_loaded = 0; *ret_loaded < n; (*ret_loaded)++) {
                _cleanup_free_ uint8_t *pe = NULL;
                size_t len;
                if ((c = read_binary(ukis[*ret_loaded], KOS_UKI_MAX, &pe, &len)) != EXIT_OK)
                        break;
                if ((r = kos_uki_identity_of(pe, len, &ids[*ret_loaded])) < 0) {
                        c = fail(EXIT_USAGE, "%s: %s", ukis[*ret_loaded], r == -ENOKEY ? "not signed" : "not a signed PE image");
                        break;
                }
        }
        return c;
}

/* kos dbx check / kos dbx apply: UPDATE.auth and --uki UKI... (apply: also
 * --efivars DIR). */
struct dbx_args {
        const char *auth, *efivars;
        const char *ukis[DBX_MAX_ITEMS];
        size_t n;
};

static int parse_dbx_args(int argc, char **argv, const char *command, const char *help, struct dbx_args *ret) {
        static const struct option options[] = {{"uki", required_argument, NULL, 'u'},
                                                {"efivars", required_argument, NULL, 'e'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        bool apply = strcmp(command, "dbx apply") == 0;
        int c;

        *ret = (struct dbx_args){.efivars = "/sys/firmware/efi/efivars"};
        while ((c = getopt_long(argc, argv, "u:e:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        fputs(help, stdout);
                        return -1;
                }
                if (c == 'e' && apply)
                        ret->efivars = optarg;
                else if (c != 'u')
                        return usage_error(command, "unknown option");
                else if (ret->n >= DBX_MAX_ITEMS)
                        return usage_error(command, "at most %d UKIs", DBX_MAX_ITEMS);
                else
                        ret->ukis[ret->n++] = optarg;
        }
        if (ret->n == 0 || argc - optind != 1)
                return usage_error(command, "expected UPDATE.auth and at least one --uki");
        ret->auth = argv[optind];
        return EXIT_OK;
}

/* The .auth and the UKIs' identities; *ret_loaded of them to release. */
static int load_update_and_ukis(const struct dbx_args *a, uint8_t **ret_auth, size_t *ret_len,
                                struct kos_uki_identity *ids, size_t *ret_loaded) {
        int c = read_binary(a->auth, KOS_DBX_UPDATE_MAX, ret_auth, ret_len);

        *ret_loaded = 0;
        return c != EXIT_OK ? c : load_ukis(a->ukis, a->n, ids, ret_loaded);
}

static int dbx_check(int argc, char **argv) {
        struct kos_uki_identity ids[DBX_MAX_ITEMS];
        _cleanup_free_ uint8_t *auth = NULL;
        struct dbx_args a;
        size_t auth_len, loaded = 0;
        struct kos_error detail;
        int c = parse_dbx_args(argc, argv, "dbx check",
                               "Usage: kos dbx check UPDATE.auth --uki UKI...\n\n"
                               "The device's check before it applies a dbx update: refused (exit 1) when it\n"
                               "would revoke one of the UKIs by its Authenticode hash or by a certificate of\n"
                               "its signature, or holds an entry type the check cannot compare.\n",
                               &a);

        if (c != EXIT_OK)
                return c < 0 ? EXIT_OK : c;
        if ((c = load_update_and_ukis(&a, &auth, &auth_len, ids, &loaded)) == EXIT_OK) {
                enum kos_dbx_verdict v = kos_dbx_check_update(auth, auth_len, ids, a.n, &detail);
                if (v == KOS_DBX_SAFE)
                        printf("safe: %s\n", detail.msg);
                else
                        c = fail(EXIT_INVALID, "dbx update refused: %s: %s", kos_dbx_verdict_to_string(v), detail.msg);
        }
        for (size_t i = 0; i < loaded; i++)
                kos_uki_identity_done(&ids[i]);
        return c;
}

static int dbx_apply(int argc, char **argv) {
        struct kos_uki_identity ids[DBX_MAX_ITEMS];
        _cleanup_free_ uint8_t *auth = NULL;
        _cleanup_close_ int efivars_fd = -1;
        enum kos_dbx_apply_result result;
        enum kos_dbx_verdict v;
        struct dbx_args a;
        size_t auth_len, loaded = 0;
        struct kos_error detail;
        int c = parse_dbx_args(argc, argv, "dbx apply",
                               "Usage: kos dbx apply UPDATE.auth --uki UKI... [--efivars DIR]\n\n"
                               "Applies a dbx update on the device, as Node Manager does for a release that\n"
                               "carries one: refused (exit 1, nothing written) when `kos dbx check` would\n"
                               "refuse it for the UKIs given (the ones the device needs to boot); nothing\n"
                               "written when dbx holds every entry already; else appended: one write of the\n"
                               "attributes 0x67 (APPEND_WRITE) and the .auth to DIR/" KOS_DBX_EFIVAR "\n"
                               "(default DIR: /sys/firmware/efi/efivars), whose KEK signature the firmware\n"
                               "checks.\n",
                               &a);

        if (c != EXIT_OK)
                return c < 0 ? EXIT_OK : c;
        efivars_fd = open(a.efivars, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (efivars_fd < 0)
                return fail(EXIT_USAGE, "cannot open %s: %s", a.efivars, strerror(errno));
        if ((c = load_update_and_ukis(&a, &auth, &auth_len, ids, &loaded)) == EXIT_OK) {
                int r = kos_dbx_apply_update(efivars_fd, auth, auth_len, ids, a.n, &result, &v, &detail);
                if (r < 0)
                        c = fail(EXIT_INVALID, "dbx update not applied: %s: %s", a.efivars, strerror(-r));
                else if (result == KOS_DBX_APPLY_REFUSED)
                        c = fail(EXIT_INVALID, "dbx update refused: %s: %s", kos_dbx_verdict_to_string(v), detail.msg);
                else
                        printf("%s: %s\n", kos_dbx_apply_result_to_string(result), detail.msg);
        }
        for (size_t i = 0; i < loaded; i++)
                kos_uki_identity_done(&ids[i]);
        return c;
}

int cmd_dbx(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "create") == 0)
                return dbx_create(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "check") == 0)
                return dbx_check(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "apply") == 0)
                return dbx_apply(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "hash") == 0)
                return dbx_hash(argc - 1, argv + 1);
        if (argc < 2 || wants_help(argc, argv)) {
                printf("Usage: kos dbx create|check|apply|hash ...\n\n"
                       "UEFI dbx updates: write a KEK-signed append revoking UKIs or db certificates,\n"
                       "check one against the UKIs a device needs, apply it through efivarfs after\n"
                       "that check, print a UKI's Authenticode hash.\n");
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        return usage_error("dbx", "unknown subcommand %s", argv[1]);
}
