/* SPDX-License-Identifier: MIT */
/* kos: build, sign, inspect and select from a KOS ImageFS on a host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kos.h"
#include "tpm.h"

#ifndef KOS_VERSION /* set by the Makefile from scripts/version.sh */
#define KOS_VERSION "unknown"
#endif

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
} commands[] = {
        {"keygen", cmd_keygen, "SECRET.pem PUBLIC.pem   generate an Ed25519 signing key"},
        {"key-id", cmd_key_id, "KEY.pem|'pkcs11:...'    print the id of a public, secret or HSM key"},
        {"imagefs", cmd_imagefs, "init DIR               create an empty ImageFS"},
        {"component", cmd_component, "add DIR FILE...      store files in components/, print their sha256"},
        {"manifest", cmd_manifest, "create|sign|verify|show  write, sign and inspect manifests"},
        {"bundle", cmd_bundle, "create|install          write or install an update bundle"},
        {"install", cmd_install, "DIR MANIFEST            copy a signed manifest into the ImageFS"},
        {"activate", cmd_activate, "DIR NAME [--first|--last] [--tries N]  put a manifest in the active list"},
        {"deactivate", cmd_deactivate, "DIR NAME             take a manifest out of the active list"},
        {"mark-good", cmd_mark_good, "DIR NAME --keyring K  end a manifest's trial; raise the rollback floor"},
        {"list", cmd_list, "DIR                        show the active list and installed manifests"},
        {"gc", cmd_gc, "DIR --keyring DIR [--dry-run]  remove components no manifest references"},
        {"node", cmd_node, "status|install|check-update|hold|start-app|activate|mark-good|reboot  talk to Node Manager"},
        {"mkboot", cmd_mkboot, "--kernel-dir DIR --keyring DIR --output DIR  build the Boot Kernel"},
        {"mkinitrd", cmd_mkinitrd, "--kernel-dir DIR --keyring DIR --output FILE  build the System Kernel's initrd"},
        {"dbx", cmd_dbx, "create|check|apply|hash      UEFI dbx updates revoking UKIs or db certificates"},
        {"revocation", cmd_revocation, "create|install       the manifest-key revocation list"},
        {"select", cmd_select, "DIR --keyring DIR [--explain] [--json]  choose the manifest that boots"},
        {"key", cmd_key, "seal|unseal|export-public  TPM-sealed component keys; an HSM key's public PEM"},
        {"datafs", cmd_datafs, "erase|factory-reset|recover   the LUKS2 DataFS: erase, reset, vendor recovery"},
        {"bk-slots", cmd_bk_slots, "show|write --esp DIR  the Boot Kernel's two ESP slots"},
        {"tpm", cmd_tpm, "floor|provision|raise|floor-policy|pcr|expected-pcr  the TPM's rollback floor and PCR"},
#ifdef KOS_WITH_HOST /* the host kos; not the device's static one (lib/registry, lib/host) */
        {"push", cmd_push, "IMAGEFS NAME REF        publish a signed manifest to an OCI registry"},
        {"pull", cmd_pull, "REF IMAGEFS --keyring DIR  install one from an OCI registry"},
        {"image", cmd_image, "--imagefs DIR [--uki FILE] OUTPUT  write a factory disk image"},
#endif
};

static int help(void) {
        printf("Usage: kos COMMAND [ARGS]\n\nBuild, sign, inspect and select from a KOS ImageFS.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-11s %s\n", commands[i].name, commands[i].summary);
        printf("\nEvery command takes --help; --version prints kos's version. Exit status: 0 success,\n"
               "1 nothing valid or verification failed, 2 usage or I/O error.\n"
               "Manual: kos(1); formats: kos-formats(5), docs/format.md.\n");
        return EXIT_OK;
}

int main(int argc, char **argv) {
        /* The TPM that holds the rollback floor: $KOS_TPM, else /dev/tpmrm0
         * or /dev/tpm0 (docs/tpm.md); KOS_TPM=none on a workstation that has
         * a TPM of its own and works on scratch ImageFS trees. */
        kos_tpm_select(getenv("KOS_TPM"));
        if (argc < 2)
                return help(), EXIT_USAGE;
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
                return help();
        if (strcmp(argv[1], "--version") == 0)
                return printf("kos %s\n", KOS_VERSION), EXIT_OK;
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].run(argc - 1, argv + 1);
        fprintf(stderr, "kos: unknown command '%s'. Try 'kos --help'.\n", argv[1]);
        return EXIT_USAGE;
}
