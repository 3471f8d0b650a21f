/* placeholder: being written */
typedef int hf_placeholder_objstore_fault_c;
