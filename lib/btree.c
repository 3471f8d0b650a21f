/* placeholder: being written */
typedef int hf_placeholder_btree_c;
