/* SPDX-License-Identifier: MIT */
/* kos tpm: the TPM side of anti-rollback and measured boot, for a device's
 * operator and for tests (against swtpm's socket). The TPM is the one
 * $KOS_TPM selects (tpm.h, kos_tpm_select()): /dev/tpmrm0 by default. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "kos.h"
#include "tpm.h"

static int usage(void) {
        printf("Usage: kos tpm floor | provision | raise N | bk-floor | bk-provision | bk-raise N |\n"
               "               floor-policy | pcr | expected-pcr ID\n"
               "       kos tpm policy-key | sign-policy  (signed PCR policies: kos tpm sign-policy --help)\n\n"
               "  floor          print the rollback floor the TPM's NV counter 0x%08x holds\n"
               "  provision      define that counter if absent, migrate its first definition, give it a\n"
               "                 floor (as the Boot Kernel does); an index that is not exactly the counter\n"
               "                 is refused, never replaced\n"
               "  raise N        raise the TPM floor to N (never lowers it); kos mark-good raises it itself\n"
               "  bk-floor, bk-provision, bk-raise N  the same for the Boot Kernel floor, NV 0x%08x (the\n"
               "                 lowest Boot Kernel security version that may run; Node Manager raises it\n"
               "                 when it blesses a new UKI)\n"
               "  floor-policy   print the counter's authPolicy (hex), to define it with tpm2_nvdefine -L\n"
               "  pcr            print the SHA-256 value of PCR %d\n"
               "  expected-pcr ID  print the PCR %d value after measuring manifest ID (hex) from reset\n\n"
               "The TPM is $KOS_TPM: a device node or a swtpm server socket; unset: /dev/tpmrm0,\n"
               "else /dev/tpm0; none: no TPM. See docs/tpm.md.\n",
               KOS_TPM_FLOOR_INDEX, KOS_TPM_BK_FLOOR_INDEX, KOS_TPM_PCR, KOS_TPM_PCR);
        return EXIT_OK;
}


/* why: what the library said (lib/boot/tpm.h: every floor call says why it failed). */
static int tpm_fail(struct kos_tpm *t, const char *what, int r, const char *why) {
        int code = r == -ERANGE ? EXIT_INVALID : EXIT_USAGE;

        fail(code, "%s: %s", what, why && why[0] ? why : strerror(-r));
        kos_tpm_close(t);
        return code;
}

static int parse_u32(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (!*s || *end || errno || v > UINT32_MAX || s[0] == '-')
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int cmd_tpm(int argc, char **argv) {
        struct kos_tpm t;
        uint8_t id[KOS_SHA256_LEN], value[KOS_SHA256_LEN];
        char hex[KOS_SHA256_HEX_LEN + 1], message[320];
        uint32_t floor;
        int r;

        if (argc >= 2 && (strcmp(argv[1], "policy-key") == 0 || strcmp(argv[1], "sign-policy") == 0))
                return cmd_tpm_policy(argc - 1, argv + 1); /* cmd-tpm-policy.c: signed PCR policies */
        if (argc < 2 || wants_help(argc, argv))
                return argc < 2 ? (usage(), EXIT_USAGE) : usage();
        const char *verb = argv[1];
        if (strcmp(verb, "expected-pcr") == 0) {
                if (argc != 3 || kos_hex_decode(argv[2], strlen(argv[2]), id, sizeof id) < 0)
                        return usage_error("tpm expected-pcr", "expected a manifest id: 64 lowercase hex digits");
                if (kos_tpm_manifest_expected_pcr(id, value) < 0)
                        return fail(EXIT_USAGE, "cannot hash");
                kos_hex_encode(value, sizeof value, hex);
                printf("%s\n", hex);
                return EXIT_OK;
        }
        if (strcmp(verb, "floor-policy") == 0) {
                if (argc != 2)
                        return usage_error("tpm floor-policy", "no arguments");
                if (kos_tpm_floor_policy_digest(value) < 0)
                        return fail(EXIT_USAGE, "cannot hash");
                kos_hex_encode(value, sizeof value, hex);
                printf("%s\n", hex);
                return EXIT_OK;
        }
        bool raise = strcmp(verb, "raise") == 0 || strcmp(verb, "bk-raise") == 0;
        if (raise ? argc != 3 : argc != 2)
                return usage_error("tpm", "wrong number of arguments");
        if ((r = open_tpm_or_fail(&t)) != EXIT_OK)
                return r;
        if (strcmp(verb, "floor") == 0) {
                if ((r = kos_tpm_floor_read(&t, &floor, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot read the floor counter", r, message);
                printf("%lu\n", (unsigned long)floor);
        } else if (strcmp(verb, "provision") == 0) {
                if ((r = kos_tpm_floor_provision(&t, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot provision the floor counter", r, message);
                printf("%s\n", message[0] ? message : "already provisioned");
        } else if (strcmp(verb, "raise") == 0) {
                if (parse_u32(argv[2], &floor) < 0)
                        return usage_error("tpm raise", "N must be a number from 0 to 4294967295");
                if ((r = kos_tpm_floor_raise(&t, floor, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot raise the floor counter", r, message);
        } else if (strcmp(verb, "bk-floor") == 0) {
                if ((r = kos_tpm_bk_floor_read(&t, &floor, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot read the Boot Kernel floor counter", r, message);
                printf("%lu\n", (unsigned long)floor);
        } else if (strcmp(verb, "bk-provision") == 0) {
                if ((r = kos_tpm_bk_floor_provision(&t, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot provision the Boot Kernel floor counter", r, message);
                printf("%s\n", message[0] ? message : "already provisioned");
        } else if (strcmp(verb, "bk-raise") == 0) {
                if (parse_u32(argv[2], &floor) < 0)
                        return usage_error("tpm bk-raise", "N must be a number from 0 to 4294967295");
                if ((r = kos_tpm_bk_floor_raise(&t, floor, message, sizeof message)) < 0)
                        return tpm_fail(&t, "cannot raise the Boot Kernel floor counter", r, message);
        } else if (strcmp(verb, "pcr") == 0) {
                if ((r = kos_tpm_pcr_read(&t, KOS_TPM_PCR, value)) < 0)
                        return tpm_fail(&t, "cannot read the PCR", r, NULL);
                kos_hex_encode(value, sizeof value, hex);
                printf("%s\n", hex);
        } else {
                kos_tpm_close(&t);
                return usage_error("tpm", "unknown command '%s'", verb);
        }
        kos_tpm_close(&t);
        return EXIT_OK;
}
