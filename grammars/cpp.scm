; C++ definitions: namespaces and classes are containers (`ns::Type::method`); an
; out-of-line method keeps its qualified name (`Type::method`); a template is captured with
; its `template <…>` line.

(namespace_definition name: (_) @name body: (declaration_list)) @definition.namespace
(class_specifier name: (_) @name body: (field_declaration_list)) @definition.class
(struct_specifier name: (_) @name body: (field_declaration_list)) @definition.struct
(union_specifier name: (_) @name body: (field_declaration_list)) @definition.union
(enum_specifier name: (_) @name body: (enumerator_list)) @definition.enum
(function_definition
  declarator: [
    (function_declarator declarator: (_) @name)
    (pointer_declarator declarator: (function_declarator declarator: (_) @name))
    (reference_declarator (function_declarator declarator: (_) @name))
  ]) @definition.function
(template_declaration
  (function_definition
    declarator: [
      (function_declarator declarator: (_) @name)
      (pointer_declarator declarator: (function_declarator declarator: (_) @name))
      (reference_declarator (function_declarator declarator: (_) @name))
    ])) @definition.function
(template_declaration
  (class_specifier name: (_) @name body: (field_declaration_list) @body)) @definition.class
(template_declaration
  (struct_specifier name: (_) @name body: (field_declaration_list) @body)) @definition.struct
