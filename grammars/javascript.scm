; JavaScript (and JSX) definitions. An exported definition is captured with its `export`;
; a function assigned to a `const`, `let` or `var` is a function.

(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_declaration name: (identifier) @name) @definition.class
(method_definition name: (_) @name) @definition.function
(lexical_declaration
  (variable_declarator name: (identifier) @name
    value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function
(export_statement
  declaration: (function_declaration name: (identifier) @name)) @definition.function
(export_statement
  declaration: (class_declaration name: (identifier) @name)) @definition.class
(export_statement
  declaration: (lexical_declaration
    (variable_declarator name: (identifier) @name
      value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]))) @definition.function
(variable_declaration
  (variable_declarator name: (identifier) @name
    value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function
; A function assigned to a property (`res.send = function send() {…}`,
; `Router.prototype.add = …`, `exports.parse = …`) is named by the property path.
(expression_statement
  (assignment_expression
    left: (member_expression) @name
    right: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function
