// Status and Result<T> are part of the public SDK API; see include/dtx/status.h.
#pragma once

#include "dtx/status.h"
