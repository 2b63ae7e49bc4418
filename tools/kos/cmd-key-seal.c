/* SPDX-License-Identifier: MIT */
/* kos key seal | unseal: keys of encrypted components sealed to the verified
 * chain (docs/tpm.md, "Sealed keys"), against the TPM $KOS_TPM selects: a
 * device's own TPM, or at the factory the device's TPM reached from a host
 * (tests: a swtpm socket). Sealing needs no particular PCR state: the policy
 * is computed here from the values the PCRs will hold in the System
 * Kernel's initrd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "kos.h"
#include "signing-key.h"
#include "tpm-policy.h"
#include "tpm-seal.h"

static int usage(void) {
        printf("Usage: kos key seal --key-file KEY [--key-id ID] [--pcrs LIST] [--pcr-value N=HEX]...\n"
               "                    [--manifest ID] --output DIR\n"
               "       kos key seal --key-file KEY [--key-id ID] --policy-key PUBLIC.pem --output DIR\n"
               "       kos key unseal [--output FILE] [--policy FILE --policy-key PUBLIC.pem] SEALED_KEY_FILE\n"
               "       kos key migrate --policy FILE --policy-key PUBLIC.pem SEALED_KEY_FILE\n"
               "       kos key export-public [--pkcs11-module PATH] 'pkcs11:...' PUBLIC.pem\n\n"
               "seal    seals KEY (1 to %d bytes) in the TPM with PolicyPCR over LIST (default %d;\n"
               "        it must include %d) and writes DIR/ID (ID defaults to KEY's file name), the\n"
               "        sealed-key file the System Kernel looks for in the ImageFS's %s/.\n"
               "        PCR values: %d is the Boot Kernel's marker, computed here; %d is the\n"
               "        measurement of the manifest --manifest ID (one release only); any other\n"
               "        comes from --pcr-value, else is read from the TPM now (PCR 7 is stable).\n"
               "        With --policy-key: sealed to TPM2_PolicyAuthorize by the vendor's policy key\n"
               "        (kos tpm policy-key); it opens with any PCR policy the vendor signs (kos tpm\n"
               "        sign-policy), without sealing again when PCR 7 or the Boot Kernel changes.\n"
               "migrate unseals a key sealed the old way (PolicyPCR) and seals it again to the signed\n"
               "        policies of PUBLIC.pem, replacing the file once the signed policy FILE opens the\n"
               "        new one (the System Kernel does this at boot, docs/tpm.md).\n"
               "unseal  prints the length and sha256 of the key (never the key) or, with --output,\n"
               "        writes it (0600); exit 1 when the TPM refuses, with the reason.\n\n"
               "export-public  writes the public key of a signing key in an HSM as PEM\n"
               "        (see kos key export-public --help).\n\n"
               "The TPM is $KOS_TPM (a device node or a swtpm socket). See docs/tpm.md.\n",
               KOS_TPM_SEAL_DATA_MAX, KOS_TPM_SEAL_PCR, KOS_TPM_SEAL_PCR, KOS_SEALED_KEY_DIR, KOS_TPM_SEAL_PCR,
               KOS_TPM_PCR);
        return EXIT_OK;
}


/* "N=HEX" into values[N], marking N in *given (kos key seal, kos tpm
 * sign-policy). */
int parse_pcr_value(const char *s, uint32_t *given, uint8_t values[24][KOS_SHA256_LEN]) {
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        unsigned long n = strtoul(s, &end, 10);
        if (end == s || *end != '=' || n > 23 || strlen(end + 1) != KOS_SHA256_HEX_LEN ||
            kos_hex_decode(end + 1, KOS_SHA256_HEX_LEN, values[n], KOS_SHA256_LEN) < 0)
                return -EINVAL;
        *given |= 1u << n;
        return 0;
}

/* The value each PCR of mask will hold when the System Kernel unseals. */
static int fill_values(struct kos_tpm *t, uint32_t mask, uint32_t given, const char *manifest,
                       uint8_t values[24][KOS_SHA256_LEN]) {
        uint8_t id[KOS_SHA256_LEN];

        for (unsigned i = 0; i < 24; i++) {
                if (!(mask & (1u << i)) || (given & (1u << i)))
                        continue;
                if (i == KOS_TPM_SEAL_PCR) {
                        if (kos_tpm_seal_pcr_expected(values[i]) < 0)
                                return fail(EXIT_USAGE, "cannot hash");
                } else if (i == KOS_TPM_PCR) {
                        if (!manifest || kos_hex_decode(manifest, strlen(manifest), id, sizeof id) < 0)
                                return usage_error("key seal", "PCR %d needs --manifest ID (64 hex digits) or "
                                                   "--pcr-value %d=HEX", KOS_TPM_PCR, KOS_TPM_PCR);
                        if (kos_tpm_manifest_expected_pcr(id, values[i]) < 0)
                                return fail(EXIT_USAGE, "cannot hash");
                } else {
                        int r = kos_tpm_pcr_read(t, i, values[i]);
                        if (r < 0)
                                return fail(EXIT_USAGE, "cannot read PCR %u: %s", i, strerror(-r));
                        fprintf(stderr, "kos key seal: PCR %u: the TPM's current value\n", i);
                }
        }
        return EXIT_OK;
}

static int write_sealed(const char *dir, const char *id, const struct kos_sealed_key *k) {
        uint8_t buf[KOS_SEALED_KEY_MAX];
        int n = kos_sealed_key_format(k, buf, sizeof buf);

        if (n < 0)
                return fail(EXIT_USAGE, "the sealed object is too large");
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return fail(EXIT_USAGE, "cannot create %s: %s", dir, strerror(errno));
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = dirfd < 0 ? -errno : kos_write_file_atomic_at(dirfd, id, buf, (size_t)n, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s/%s: %s", dir, id, strerror(-r));
        return EXIT_OK;
}

static int read_policy_key(const char *path, struct kos_tpm_ecc_point *ret) {
        _cleanup_free_ char *pem = NULL;
        size_t len;
        int r = read_path(path, 4096, &pem, &len);

        if (r < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, file_error_string(r));
        if (kos_tpm_ecc_point_from_pem(pem, len, ret) < 0)
                return fail(EXIT_USAGE, "%s is not a NIST P-256 public key (PEM)", path);
        return EXIT_OK;
}

/* kos key seal --policy-key: a KOSSEAL2 file, sealed to PolicyAuthorize. */
static int seal_authorized(const char *key_file, const char *key_id, const char *policy_key_path, const char *output) {
        struct kos_tpm_ecc_point policy_key;
        struct kos_authorized_key sealed;
        struct kos_tpm t;
        uint8_t buf[KOS_AUTHORIZED_KEY_MAX];
        struct kos_error error = KOS_ERROR_NULL;
        int r;

        if ((r = read_policy_key(policy_key_path, &policy_key)) != EXIT_OK)
                return r;
        _cleanup_free_ char *key = NULL;
        size_t key_len;
        if ((r = read_path(key_file, KOS_TPM_SEAL_DATA_MAX + 1, &key, &key_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", key_file, file_error_string(r));
        if (key_len == 0 || key_len > KOS_TPM_SEAL_DATA_MAX)
                return fail(EXIT_USAGE, "%s: a sealed key is 1 to %d bytes", key_file, KOS_TPM_SEAL_DATA_MAX);
        if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                return r;
        r = kos_tpm_seal_authorized(&t, (const uint8_t *)key, key_len, &policy_key, &sealed, &error);
        explicit_bzero(key, key_len);
        kos_tpm_close(&t);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot seal %s: %s", key_file, error.msg);
        int n = kos_authorized_key_format(&sealed, buf, sizeof buf);
        if (n < 0)
                return fail(EXIT_USAGE, "the sealed object is too large");
        if (mkdir(output, 0755) < 0 && errno != EEXIST)
                return fail(EXIT_USAGE, "cannot create %s: %s", output, strerror(errno));
        _cleanup_close_ int dirfd = open(output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = dirfd < 0 ? -errno : kos_write_file_atomic_at(dirfd, key_id, buf, (size_t)n, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s/%s: %s", output, key_id, strerror(-r));
        printf("sealed %s to the signed policies of %s: %s/%s\n", key_id, policy_key_path, output, key_id);
        return EXIT_OK;
}

static int key_seal(int argc, char **argv) {
        static const struct option options[] = {
                {"key-file", required_argument, NULL, 'k'}, {"key-id", required_argument, NULL, 'i'},
                {"pcrs", required_argument, NULL, 'p'},     {"pcr-value", required_argument, NULL, 'v'},
                {"manifest", required_argument, NULL, 'm'}, {"output", required_argument, NULL, 'o'},
                {"policy-key", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'}, {}};
        const char *key_file = NULL, *key_id = NULL, *output = NULL, *manifest = NULL, *policy_key = NULL;
        bool pcrs_given = false;
        uint8_t values[24][KOS_SHA256_LEN] = {{0}};
        uint32_t mask = 1u << KOS_TPM_SEAL_PCR, given = 0;
        struct kos_sealed_key sealed;
        struct kos_tpm t;
        struct kos_error error = KOS_ERROR_NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return usage();
                case 'k': key_file = optarg; break;
                case 'i': key_id = optarg; break;
                case 'o': output = optarg; break;
                case 'm': manifest = optarg; break;
                case 'P': policy_key = optarg; break;
                case 'p':
                        pcrs_given = true;
                        if (kos_tpm_parse_pcr_list(optarg, &mask) < 0)
                                return usage_error("key seal", "--pcrs: a list of PCRs 0-23, each once: 7,%d",
                                                   KOS_TPM_SEAL_PCR);
                        break;
                case 'v':
                        pcrs_given = true;
                        if (parse_pcr_value(optarg, &given, values) < 0)
                                return usage_error("key seal", "--pcr-value: N=64 hex digits");
                        break;
                default:
                        return usage_error("key seal", "unknown option");
                }
        }
        if (!key_file || !output || optind != argc)
                return usage_error("key seal", "expected --key-file KEY and --output DIR");
        if (policy_key && (pcrs_given || manifest))
                return usage_error("key seal", "--policy-key seals to the vendor's signed policies: the PCRs are "
                                   "in what it signs (kos tpm sign-policy), not --pcrs or --pcr-value");
        if (!(mask & (1u << KOS_TPM_SEAL_PCR)))
                return usage_error("key seal", "--pcrs must include %d: without it the key opens after the "
                                   "System Kernel's leave event, for anyone", KOS_TPM_SEAL_PCR);
        if (given & ~mask)
                return usage_error("key seal", "--pcr-value for a PCR not in --pcrs");
        _cleanup_free_ char *copy = strdup(key_file);
        if (!copy)
                return fail(EXIT_USAGE, "out of memory");
        if (!key_id)
                key_id = basename(copy);
        if (!kos_name_is_valid(key_id))
                return usage_error("key seal", "key id '%s' is not a valid name (docs/format.md)", key_id);
        if (policy_key)
                return seal_authorized(key_file, key_id, policy_key, output);
        _cleanup_free_ char *key = NULL;
        size_t key_len;
        if ((r = read_path(key_file, KOS_TPM_SEAL_DATA_MAX + 1, &key, &key_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", key_file, file_error_string(r));
        if (key_len == 0 || key_len > KOS_TPM_SEAL_DATA_MAX)
                return fail(EXIT_USAGE, "%s: a sealed key is 1 to %d bytes", key_file, KOS_TPM_SEAL_DATA_MAX);
        if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                return r;
        if ((r = fill_values(&t, mask, given, manifest, values)) != EXIT_OK) {
                kos_tpm_close(&t);
                return r;
        }
        r = kos_tpm_seal(&t, (const uint8_t *)key, key_len, mask, values, &sealed, &error);
        explicit_bzero(key, key_len);
        kos_tpm_close(&t);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot seal %s: %s", key_file, error.msg);
        if ((r = write_sealed(output, key_id, &sealed)) != EXIT_OK)
                return r;
        printf("sealed %s to PCR", key_id);
        for (unsigned i = 0; i < 24; i++)
                if (mask & (1u << i))
                        printf(" %u", i);
        printf(": %s/%s\n", output, key_id);
        return EXIT_OK;
}

/* The policy key and the signed policy, for unseal and migrate. */
static int read_policy_pair(const char *policy_path, const char *policy_key_path, struct kos_signed_policy *policy,
                            struct kos_tpm_ecc_point *policy_key) {
        _cleanup_free_ char *signed_policy = NULL;
        size_t len;
        int r = read_policy_key(policy_key_path, policy_key);

        if (r != EXIT_OK)
                return r;
        if ((r = read_path(policy_path, KOS_SIGNED_POLICY_MAX, &signed_policy, &len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", policy_path, file_error_string(r));
        if (kos_signed_policy_parse((const uint8_t *)signed_policy, len, policy) < 0)
                return fail(EXIT_INVALID, "%s is not a signed-policy file (docs/tpm.md)", policy_path);
        return EXIT_OK;
}

/* A KOSSEAL2 file: opened with a signed policy and the policy key. */
static int unseal_authorized(const char *file, const char *data, size_t len, const char *policy_path,
                             const char *policy_key_path, uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX],
                             size_t *ret_len) {
        struct kos_authorized_key k;
        struct kos_signed_policy policy;
        struct kos_tpm_ecc_point policy_key;
        struct kos_tpm t;
        struct kos_error error = KOS_ERROR_NULL;
        int r;

        if (kos_authorized_key_parse((const uint8_t *)data, len, &k) < 0)
                return fail(EXIT_INVALID, "%s is not a sealed-key file (docs/tpm.md)", file);
        if (!policy_path || !policy_key_path)
                return usage_error("key unseal", "%s is sealed to signed policies: give --policy FILE and "
                                   "--policy-key PUBLIC.pem", file);
        if ((r = read_policy_pair(policy_path, policy_key_path, &policy, &policy_key)) != EXIT_OK)
                return r;
        if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                return r;
        r = kos_tpm_unseal_authorized(&t, &k, &policy_key, &policy, ret_data, ret_len, &error);
        kos_tpm_close(&t);
        if (r < 0)
                return fail(EXIT_INVALID, "cannot unseal %s: %s", file, error.msg);
        return EXIT_OK;
}

static int key_unseal(int argc, char **argv) {
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'}, {"policy", required_argument, NULL, 'p'},
                {"policy-key", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'}, {}};
        const char *output = NULL, *policy = NULL, *policy_key = NULL;
        uint8_t data[KOS_TPM_SEAL_DATA_MAX], digest[KOS_SHA256_LEN];
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct kos_error error = KOS_ERROR_NULL;
        struct kos_sealed_key k;
        struct kos_tpm t;
        size_t len;
        int c, r;

        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
                if (c == 'h')
                        return usage();
                if (c == 'p')
                        policy = optarg;
                else if (c == 'P')
                        policy_key = optarg;
                else if (c == 'o')
                        output = optarg;
                else
                        return usage_error("key unseal", "unknown option");
        }
        if (argc - optind != 1)
                return usage_error("key unseal", "expected one sealed-key file");
        _cleanup_free_ char *file = NULL;
        size_t file_len;
        if ((r = read_path(argv[optind], KOS_SEALED_KEY_MAX, &file, &file_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", argv[optind], file_error_string(r));
        if (file_len >= 8 && memcmp(file, KOS_AUTHORIZED_KEY_MAGIC, 8) == 0) {
                if ((r = unseal_authorized(argv[optind], file, file_len, policy, policy_key, data, &len)) != EXIT_OK)
                        return r;
        } else {
                if (kos_sealed_key_parse((const uint8_t *)file, file_len, &k) < 0)
                        return fail(EXIT_INVALID, "%s is not a sealed-key file (docs/tpm.md)", argv[optind]);
                if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                        return r;
                r = kos_tpm_unseal(&t, &k, data, &len, &error);
                kos_tpm_close(&t);
                if (r < 0)
                        return fail(EXIT_INVALID, "cannot unseal %s: %s", argv[optind], error.msg);
        }
        if (output) {
                _cleanup_close_ int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                r = fd < 0 ? -errno : kos_write_all(fd, data, len);
                explicit_bzero(data, sizeof data);
                if (r < 0)
                        return fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(-r));
                return EXIT_OK;
        }
        r = kos_sha256(data, len, digest);
        explicit_bzero(data, sizeof data);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot hash");
        kos_hex_encode(digest, sizeof digest, hex);
        printf("unsealed %zu bytes, sha256 %s\n", len, hex);
        return EXIT_OK;
}

static int key_migrate(int argc, char **argv) {
        static const struct option options[] = {{"policy", required_argument, NULL, 'p'},
                                                 {"policy-key", required_argument, NULL, 'P'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {}};
        const char *policy_path = NULL, *policy_key_path = NULL;
        struct kos_signed_policy policy;
        struct kos_tpm_ecc_point policy_key;
        struct kos_sealed_key old;
        struct kos_authorized_key sealed;
        struct kos_tpm t;
        uint8_t data[KOS_TPM_SEAL_DATA_MAX], buf[KOS_AUTHORIZED_KEY_MAX];
        size_t len;
        struct kos_error error = KOS_ERROR_NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'h')
                        return usage();
                if (c == 'p')
                        policy_path = optarg;
                else if (c == 'P')
                        policy_key_path = optarg;
                else
                        return usage_error("key migrate", "unknown option");
        }
        if (argc - optind != 1 || !policy_path || !policy_key_path)
                return usage_error("key migrate", "expected --policy FILE --policy-key PUBLIC.pem SEALED_KEY_FILE");
        const char *path = argv[optind];
        _cleanup_free_ char *file = NULL;
        size_t file_len;
        if ((r = read_path(path, KOS_SEALED_KEY_MAX, &file, &file_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, file_error_string(r));
        if (kos_sealed_key_parse((const uint8_t *)file, file_len, &old) < 0)
                return fail(EXIT_INVALID, "%s is not a sealed-key file of the old scheme (KOSSEAL1)", path);
        if ((r = read_policy_pair(policy_path, policy_key_path, &policy, &policy_key)) != EXIT_OK)
                return r;
        if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                return r;
        r = kos_tpm_unseal(&t, &old, data, &len, &error);
        if (r == 0) {
                r = kos_tpm_reseal_authorized(&t, data, len, &policy_key, &policy, &sealed, &error);
                explicit_bzero(data, sizeof data);
        }
        kos_tpm_close(&t);
        if (r < 0)
                return fail(EXIT_INVALID, "cannot migrate %s: %s", path, error.msg);
        int n = kos_authorized_key_format(&sealed, buf, sizeof buf);
        r = n < 0 ? n : kos_write_file_atomic_at(AT_FDCWD, path, buf, (size_t)n, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", path, strerror(-r));
        printf("migrated %s to the signed policies of %s\n", path, policy_key_path);
        return EXIT_OK;
}

int cmd_key(int argc, char **argv) {
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
                return argc < 2 ? (usage(), EXIT_USAGE) : usage();
        if (strcmp(argv[1], "seal") == 0)
                return key_seal(argc - 1, argv + 1);
        if (strcmp(argv[1], "unseal") == 0)
                return key_unseal(argc - 1, argv + 1);
        if (strcmp(argv[1], "migrate") == 0)
                return key_migrate(argc - 1, argv + 1);
        if (strcmp(argv[1], "export-public") == 0)
                return cmd_key_export_public(argc - 1, argv + 1); /* cmd-keys.c: HSM keys */
        return usage_error("key", "unknown command '%s'", argv[1]);
}
