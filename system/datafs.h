/* SPDX-License-Identifier: MIT */
/* The DataFS (/data) encrypted with LUKS2 and sealed to the verified chain
 * (docs/system-kernel.md, "The DataFS"; docs/tpm.md, "The DataFS key").
 *
 * The signed cmdline chooses (kos.datafs=luks2|plain; plain is the default
 * for now). With luks2, the System Kernel's init, before the leave event:
 *   - an empty partition (libblkid finds no LUKS2 header and no file
 *     system), in the verified chain (PCR 15 holds the marker): formats it
 *     as LUKS2 (aes-xts-plain64, a 512-bit volume key from getrandom), adds a
 *     key slot whose passphrase is a second random secret, seals that secret
 *     in the TPM (datafs_seal_key()), stores the sealed object in the header
 *     as a "systemd-tpm2" token, opens it and makes ext4 inside;
 *   - a LUKS2 partition: unseals the token's secret and opens it;
 *   - anything else, or an unseal that fails: "locked", with the reason;
 *     nothing is written to the partition, and the boot goes on without
 *     /data. A plain file system is never mounted: the signed cmdline, not
 *     the disk, says the DataFS is encrypted. */
#pragma once

#include <stdbool.h>

#include "datafs-luks2.h"

/* Before the leave event: finds spec's device and opens, formats or locks it
 * as above (luks2), or leaves a plain one to mount (plain). marker: the
 * handoff says the Boot Kernel extended PCR 15. Never fails the boot. */
void datafs_prepare(struct datafs *d, const char *spec, bool marker);
