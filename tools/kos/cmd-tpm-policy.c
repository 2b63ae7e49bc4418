/* SPDX-License-Identifier: MIT */
/* kos tpm policy-key | sign-policy: the vendor's side of signed PCR policies
 * (docs/tpm.md, "Signed policies"). The vendor keeps the private policy key
 * (like its Secure Boot db key), ships the public half in the System
 * Kernel's initrd and signs, per release, the PCR values its boot chain
 * produces: PCR 7 as its Secure Boot keys make it, PCR 14 for the Boot
 * Kernel's security version, PCR 15 the marker. No TPM is involved. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "kos.h"
#include "tpm-policy.h"
#include "tpm-seal.h"

static int usage(void) {
        printf("Usage: kos tpm policy-key PRIVATE.pem PUBLIC.pem\n"
               "       kos tpm sign-policy --key PRIVATE.pem [--pcrs LIST] [--pcr-value N=HEX]...\n"
               "                           [--security-version N] [--add] --output FILE\n\n"
               "policy-key   makes the vendor's NIST P-256 policy key (the TPM has no Ed25519);\n"
               "             PUBLIC.pem goes into the System Kernel's initrd as %s.\n"
               "sign-policy  signs PolicyPCR over LIST (default 7,%d,%d) for TPM2_PolicyAuthorize\n"
               "             (policyRef \"%s\"). PCR %d is the Boot Kernel's marker, computed;\n"
               "             PCR %d the Boot Kernel's security version N, computed; any other PCR\n"
               "             needs --pcr-value (PCR 7: sb_expected_pcr7 of the vendor's keys).\n"
               "             --add appends the entry to FILE (at most %d: e.g. two security versions\n"
               "             while a Boot Kernel update rolls out). FILE ships on the ImageFS as %s.\n",
               KOS_TPM_POLICY_KEY_PATH, KOS_TPM_BK_VERSION_PCR, KOS_TPM_SEAL_PCR, KOS_TPM_POLICY_REF,
               KOS_TPM_SEAL_PCR, KOS_TPM_BK_VERSION_PCR, KOS_SIGNED_POLICY_MAX_ENTRIES, KOS_TPM_POLICY_FILE);
        return EXIT_OK;
}

static int write_pem(const char *path, EVP_PKEY *pkey, bool private_key) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, private_key ? 0600 : 0644);
        if (fd < 0)
                return -errno;
        FILE *f = fdopen(fd, "w");
        if (!f) {
                close(fd);
                return -errno;
        }
        int ok = private_key ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, pkey);
        return fclose(f) == 0 && ok ? 0 : -EIO;
}

static int policy_key(int argc, char **argv) {
        if (argc != 3)
                return usage_error("tpm policy-key", "expected PRIVATE.pem PUBLIC.pem");
        EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!pkey)
                return fail(EXIT_USAGE, "cannot make a P-256 key");
        int r = write_pem(argv[1], pkey, true);
        if (r == 0 && (r = write_pem(argv[2], pkey, false)) < 0)
                unlink(argv[1]);
        EVP_PKEY_free(pkey);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write the policy key: %s", strerror(-r));
        printf("policy key: %s (keep it with the vendor's signing keys), public half %s\n", argv[1], argv[2]);
        return EXIT_OK;
}

/* ECDSA over the 32-byte aHash itself (the TPM verifies the digest, it does
 * not hash again), as fixed-width r and s. */
static int sign_ahash(EVP_PKEY *pkey, const uint8_t ahash[static KOS_SHA256_LEN], uint8_t r_out[static 32],
                      uint8_t s_out[static 32]) {
        uint8_t der[128];
        size_t der_len = sizeof der;
        int r = -EIO;
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);

        if (ctx && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) > 0 &&
            EVP_PKEY_sign(ctx, der, &der_len, ahash, KOS_SHA256_LEN) > 0) {
                const uint8_t *p = der;
                ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
                if (sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), r_out, 32) == 32 &&
                    BN_bn2binpad(ECDSA_SIG_get0_s(sig), s_out, 32) == 32)
                        r = 0;
                ECDSA_SIG_free(sig);
        }
        EVP_PKEY_CTX_free(ctx);
        return r;
}

static EVP_PKEY *read_private_key(const char *path) {
        _cleanup_free_ char *pem = NULL;
        size_t len;

        if (read_path(path, 16384, &pem, &len) < 0)
                return NULL;
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        explicit_bzero(pem, len);
        if (pkey && !EVP_PKEY_is_a(pkey, "EC")) {
                EVP_PKEY_free(pkey);
                return NULL;
        }
        return pkey;
}

/* The existing file for --add: none yet is an empty policy. */
static int load_policy(const char *path, struct kos_signed_policy *ret) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_path(path, KOS_SIGNED_POLICY_MAX, &data, &len);

        memset(ret, 0, sizeof *ret);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, file_error_string(r));
        if (kos_signed_policy_parse((const uint8_t *)data, len, ret) < 0)
                return fail(EXIT_INVALID, "%s is not a signed-policy file", path);
        return 0;
}

static int sign_policy(int argc, char **argv) {
        static const struct option options[] = {
                {"key", required_argument, NULL, 'k'},        {"pcrs", required_argument, NULL, 'p'},
                {"pcr-value", required_argument, NULL, 'v'}, {"security-version", required_argument, NULL, 's'},
                {"add", no_argument, NULL, 'a'},              {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},             {}};
        const char *key_path = NULL, *output = NULL;
        uint32_t mask = 1u << 7 | 1u << KOS_TPM_BK_VERSION_PCR | 1u << KOS_TPM_SEAL_PCR, given = 0;
        struct kos_signed_policy_entry entry = {0};
        bool add = false, have_version = false;
        unsigned long version = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                char *end;
                switch (c) {
                case 'h': return usage();
                case 'k': key_path = optarg; break;
                case 'o': output = optarg; break;
                case 'a': add = true; break;
                case 'p':
                        if (kos_tpm_parse_pcr_list(optarg, &mask) < 0)
                                return usage_error("tpm sign-policy", "--pcrs: a list of PCRs 0-23, each once");
                        break;
                case 'v':
                        if (parse_pcr_value(optarg, &given, entry.pcr_values) < 0)
                                return usage_error("tpm sign-policy", "--pcr-value: N=64 hex digits");
                        break;
                case 's':
                        errno = 0;
                        version = strtoul(optarg, &end, 10);
                        if (*optarg < '0' || *optarg > '9' || *end || errno || version > UINT32_MAX)
                                return usage_error("tpm sign-policy", "--security-version: 0 to 4294967295");
                        have_version = true;
                        break;
                default: return usage_error("tpm sign-policy", "unknown option");
                }
        }
        if (!key_path || !output || optind != argc)
                return usage_error("tpm sign-policy", "expected --key PRIVATE.pem and --output FILE");
        if (!(mask & (1u << KOS_TPM_SEAL_PCR)))
                return usage_error("tpm sign-policy", "--pcrs must include %d: without it the key opens after the "
                                   "System Kernel's leave event, for anyone", KOS_TPM_SEAL_PCR);
        if (given & ~mask)
                return usage_error("tpm sign-policy", "--pcr-value for a PCR not in --pcrs");
        entry.pcr_mask = mask;
        for (unsigned i = 0; i < 24; i++) {
                if (!(mask & (1u << i)) || (given & (1u << i)))
                        continue;
                if (i == KOS_TPM_SEAL_PCR)
                        r = kos_tpm_seal_pcr_expected(entry.pcr_values[i]);
                else if (i == KOS_TPM_BK_VERSION_PCR && have_version)
                        r = kos_tpm_bk_version_pcr((uint32_t)version, entry.pcr_values[i]);
                else
                        return usage_error("tpm sign-policy", "PCR %u needs --pcr-value %u=HEX%s", i, i,
                                           i == KOS_TPM_BK_VERSION_PCR ? " or --security-version N" : "");
                if (r < 0)
                        return fail(EXIT_USAGE, "cannot hash");
        }
        struct kos_signed_policy policy;
        if ((r = add ? load_policy(output, &policy) : (memset(&policy, 0, sizeof policy), 0)) != 0)
                return r;
        if (policy.n >= KOS_SIGNED_POLICY_MAX_ENTRIES)
                return fail(EXIT_USAGE, "%s already holds %d signed policies", output, KOS_SIGNED_POLICY_MAX_ENTRIES);
        uint8_t ahash[KOS_SHA256_LEN];
        EVP_PKEY *pkey = read_private_key(key_path);
        if (!pkey)
                return fail(EXIT_USAGE, "%s is not a private key made by kos tpm policy-key", key_path);
        r = kos_signed_policy_ahash(mask, entry.pcr_values, ahash);
        if (r == 0)
                r = sign_ahash(pkey, ahash, entry.r, entry.s);
        EVP_PKEY_free(pkey);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot sign the policy");
        policy.entries[policy.n++] = entry;
        uint8_t buf[KOS_SIGNED_POLICY_MAX];
        int n = kos_signed_policy_format(&policy, buf, sizeof buf);
        if (n < 0)
                return fail(EXIT_USAGE, "the signed policy is too large");
        r = kos_write_file_atomic_at(AT_FDCWD, output, buf, (size_t)n, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(-r));
        printf("signed policy %u of %s: PCR", policy.n, output);
        for (unsigned i = 0; i < 24; i++)
                if (mask & (1u << i))
                        printf(" %u", i);
        printf("\n");
        return EXIT_OK;
}

int cmd_tpm_policy(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return usage();
        if (strcmp(argv[0], "policy-key") == 0)
                return policy_key(argc, argv);
        return sign_policy(argc, argv);
}
