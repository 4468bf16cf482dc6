/*
 * pending.c - passes and commands not implemented yet.  Each definition
 * here is deleted by the change that implements it in its own file; this
 * file must be empty (and then removed) before a release.
 */
#include <stdio.h>

#include "check.h"
#include "../cli/cli.h"

int qc_cmd_repair(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "qcow2fsck: repair: not implemented yet\n"); return 1; }
int qc_cmd_undo(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "qcow2fsck: undo: not implemented yet\n"); return 1; }
