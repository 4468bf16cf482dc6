/*
 * pending.c - passes and commands not implemented yet.  Each definition
 * here is deleted by the change that implements it in its own file; this
 * file must be empty (and then removed) before a release.
 */
#include <stdio.h>

#include "check.h"
#include "../cli/cli.h"

