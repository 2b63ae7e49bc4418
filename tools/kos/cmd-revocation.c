/* SPDX-License-Identifier: MIT */
/* kos revocation create | install | show: the manifest-key revocation list
 * (lib/boot/revocation.h, docs/format.md "Revocation list"). Signing is
 * kos manifest sign --key REVOCATION-KEY (the same signature file). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kos.h"
#include "revocation.h"
#include "signature.h"

/* KEY: a 16-hex-digit key id, or a PEM public key file. */
static int parse_key_arg(const char *arg, uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        _cleanup_free_ char *pem = NULL;
        size_t len;
        int r;

        if (strlen(arg) == KOS_KEY_ID_HEX_LEN && kos_hex_decode(arg, KOS_KEY_ID_HEX_LEN, ret_id, KOS_KEY_ID_LEN) == 0)
                return 0;
        if ((r = read_path(arg, KOS_KEY_FILE_MAX, &pem, &len)) < 0)
                return r;
        if ((r = kos_key_public_from_pem(pem, len, raw)) < 0)
                return r;
        return kos_key_id_of(raw, ret_id);
}

static int revocation_create(int argc, char **argv) {
        static const struct option options[] = {{"security-version", required_argument, NULL, 's'},
                                                {"revoke", required_argument, NULL, 'r'},
                                                {"output", required_argument, NULL, 'o'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        _cleanup_free_ struct kos_revocation_list *list = calloc(1, sizeof *list);
        _cleanup_free_ char *json = NULL;
        const char *output = NULL;
        bool have_version = false;
        char *end;
        int c, r;

        if (!list)
                return fail(EXIT_USAGE, "out of memory");
        while ((c = getopt_long(argc, argv, "s:r:o:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos revocation create --security-version N [--revoke KEY]... -o FILE\n\n"
                               "Writes a manifest-key revocation list: the keys (16-hex-digit ids or PEM\n"
                               "public keys) no manifest may be signed by, vouching for releases up to\n"
                               "security_version N (the release it ships with). Sign it with\n"
                               "kos manifest sign --key REVOCATION-KEY FILE; install it with\n"
                               "kos revocation install.\n");
                        return EXIT_OK;
                case 's': {
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        if (errno || *end || !*optarg || optarg[0] == '-' || v > UINT32_MAX)
                                return usage_error("revocation create", "--security-version must be 0 to %u", UINT32_MAX);
                        list->security_version = (uint32_t)v;
                        have_version = true;
                        break;
                }
                case 'r':
                        if (list->n_revoked >= KOS_REVOCATION_MAX_KEYS)
                                return usage_error("revocation create", "at most %d keys", KOS_REVOCATION_MAX_KEYS);
                        if ((r = parse_key_arg(optarg, list->revoked[list->n_revoked])) < 0)
                                return fail(EXIT_USAGE, "--revoke %s: neither a key id nor a PEM public key (%s)", optarg,
                                            strerror(-r));
                        list->n_revoked++;
                        break;
                case 'o':
                        output = optarg;
                        break;
                default:
                        return usage_error("revocation create", "unknown option");
                }
        }
        if (!have_version || !output || optind != argc)
                return usage_error("revocation create", "expected --security-version N and -o FILE");
        if ((r = kos_revocation_list_format(list, &json)) < 0 ||
            (r = kos_write_file_atomic_at(AT_FDCWD, output, json, strlen(json), 0644)) < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(-r));
        return EXIT_OK;
}

/* Verifies FILE and FILE.sig against the keyring's revocation keys. */
static int load_list_or_fail(const struct kos_keyring *ring, const char *path, char **ret_json, size_t *ret_json_len,
                             char **ret_sig, size_t *ret_sig_len, struct kos_revocation_list *ret) {
        _cleanup_free_ char *sig_path = NULL;
        struct kos_error error = KOS_ERROR_NULL;
        int r;

        if (asprintf(&sig_path, "%s.sig", path) < 0)
                return fail(EXIT_USAGE, "out of memory");
        if ((r = read_path(path, KOS_REVOCATION_FILE_MAX, ret_json, ret_json_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, file_error_string(r));
        if ((r = read_path(sig_path, KOS_SIGNATURE_FILE_MAX, ret_sig, ret_sig_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", sig_path, file_error_string(r));
        r = kos_revocation_list_load_verified(ring, *ret_json, *ret_json_len, *ret_sig, *ret_sig_len, ret, &error);
        if (r == -ENOKEY)
                return fail(EXIT_INVALID, "the keyring holds no revocation key (revocation/*.pem)");
        if (r < 0)
                return fail(EXIT_INVALID, "%s: %s", path, r == -ENOMEM ? "out of memory" : error.msg);
        return EXIT_OK;
}

/* Installs the list as IMAGEFS/revocation.json(.sig), .sig first, each
 * atomically; never over a list that vouches for a later release. */
static int revocation_install(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {}};
        _cleanup_free_ struct kos_keyring *ring = calloc(1, sizeof *ring);
        _cleanup_free_ struct kos_revocation_list *list = calloc(1, sizeof *list);
        _cleanup_free_ struct kos_revocation_state *installed = calloc(1, sizeof *installed);
        _cleanup_free_ char *json = NULL, *sig = NULL;
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        const char *keyring = NULL;
        size_t json_len, sig_len;
        int c, r;

        if (!ring || !list || !installed)
                return fail(EXIT_USAGE, "out of memory");
        while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos revocation install IMAGEFS FILE --keyring DIR\n\n"
                               "Checks FILE and FILE.sig against the keyring's revocation keys and installs\n"
                               "them as IMAGEFS/revocation.json(.sig). A list older (lower security_version)\n"
                               "than the one installed is refused.\n");
                        return EXIT_OK;
                }
                if (c != 'k')
                        return usage_error("revocation install", "unknown option");
                keyring = optarg;
        }
        if (!keyring || argc - optind != 2)
                return usage_error("revocation install", "expected IMAGEFS FILE --keyring DIR");
        if ((c = load_keyring_or_fail(keyring, ring)) != EXIT_OK ||
            (c = load_list_or_fail(ring, argv[optind + 1], &json, &json_len, &sig, &sig_len, list)) != EXIT_OK ||
            (c = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                return c;
        kos_revocation_state_read(&img, ring, installed);
        if (installed->error == 0 && installed->list.security_version > list->security_version) {
                kos_imagefs_close(&img);
                return fail(EXIT_INVALID, "%s/%s vouches for security_version %lu, newer than %lu: not replaced",
                            argv[optind], KOS_REVOCATION_FILE, (unsigned long)installed->list.security_version,
                            (unsigned long)list->security_version);
        }
        r = kos_write_file_atomic_at(img.root_fd, KOS_REVOCATION_SIG_FILE, sig, sig_len, 0644);
        if (r >= 0)
                r = kos_write_file_atomic_at(img.root_fd, KOS_REVOCATION_FILE, json, json_len, 0644);
        kos_imagefs_close(&img);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s/%s: %s", argv[optind], KOS_REVOCATION_FILE, strerror(-r));
        printf("installed revocation list (security_version %lu, %zu revoked key%s)\n",
               (unsigned long)list->security_version, list->n_revoked, list->n_revoked == 1 ? "" : "s");
        return EXIT_OK;
}

int cmd_revocation(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "create") == 0)
                return revocation_create(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "install") == 0)
                return revocation_install(argc - 1, argv + 1);
        if (argc < 2 || wants_help(argc, argv)) {
                printf("Usage: kos revocation create|install ...\n\n"
                       "The manifest-key revocation list: create one, install a signed one into an\n"
                       "ImageFS. Each takes --help.\n");
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        return usage_error("revocation", "unknown subcommand %s", argv[1]);
}
