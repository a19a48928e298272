#include "firesight/common/error.h"
// Keeps the vtable and typeinfo of Error in one translation unit.
