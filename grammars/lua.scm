; Lua functions; a name such as `M.setup` or `Obj:method` is kept as written.

(function_declaration name: (_) @name) @definition.function
(variable_declaration
  (assignment_statement
    (variable_list name: (_) @name)
    (expression_list value: (function_definition body: (_) @body)))) @definition.function
(assignment_statement
  (variable_list name: (_) @name)
  (expression_list value: (function_definition body: (_) @body))) @definition.function
(assignment_statement
  (variable_list name: (_) @name)
  (expression_list value: (function_definition))) @definition.function
