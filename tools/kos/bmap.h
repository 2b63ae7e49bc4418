/* SPDX-License-Identifier: MIT */
#pragma once

/* Writes bmap_path (atomically): the block map of the image open at
 * image_fd, for `bmaptool copy`. 0 or a negative errno. */
int kos_bmap_write(int image_fd, const char *bmap_path);
