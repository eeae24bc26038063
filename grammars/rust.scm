; Definitions codeq turns into chunks. Each pattern captures the whole definition as
; @definition.<kind> and the name used in its qualified symbol as @name.
; Kinds impl, trait, class and module are containers: functions inside them become methods
; (`Type::method`) and their other definitions are qualified by the container's name.

(function_item name: (identifier) @name) @definition.function
(function_signature_item name: (identifier) @name) @definition.function
(struct_item name: (type_identifier) @name) @definition.struct
(enum_item name: (type_identifier) @name) @definition.enum
(union_item name: (type_identifier) @name) @definition.union
(trait_item name: (type_identifier) @name) @definition.trait
(impl_item type: (_) @name) @definition.impl
(mod_item name: (identifier) @name body: (declaration_list)) @definition.module
(macro_definition name: (identifier) @name) @definition.macro
(type_item name: (type_identifier) @name) @definition.type
