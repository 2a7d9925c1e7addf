//! Chat templates: the model's own Jinja `chat_template` rendered with
//! `minijinja` in the dialect `transformers` uses (trim_blocks,
//! lstrip_blocks, Python string methods, `raise_exception`), plus the
//! built-ins `tulu` (open-instruct's Tulu format) and `chatml` (SmolLM2's
//! format without its default system prompt).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }
}

/// open-instruct's `tulu` template (`CHAT_TEMPLATES["tulu"]`).
pub const TULU_TEMPLATE: &str = "{% for message in messages %}\
{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}\
{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}\
{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}\
{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}{% endif %}{% endif %}\
{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}\
{% endfor %}";

/// ChatML as SmolLM2 uses it, without the default system prompt.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    name: String,
    env: minijinja::Environment<'static>,
}

fn raise_exception(msg: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

impl ChatTemplate {
    /// Compiles Jinja source; `name` is used in error messages.
    pub fn jinja(name: &str, source: &str) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| ModelError::Template {
                name: name.to_owned(),
                msg: e.to_string(),
            })?;
        Ok(ChatTemplate {
            name: name.to_owned(),
            env,
        })
    }

    /// A built-in template by name: `tulu` or `chatml`.
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "tulu" => Self::jinja("tulu", TULU_TEMPLATE),
            "chatml" => Self::jinja("chatml", CHATML_TEMPLATE),
            _ => Err(ModelError::Template {
                name: name.to_owned(),
                msg: "unknown built-in template (expected tulu or chatml)".into(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders a conversation. `bos_token`/`eos_token` are the strings the
    /// template may reference.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| ModelError::Template {
                name: self.name.clone(),
                msg: e.to_string(),
            })?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| ModelError::Template {
            name: self.name.clone(),
            msg: format!("{e:#}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's own template, as its tokenizer_config.json has it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn tulu_matches_open_instruct() {
        let t = ChatTemplate::builtin("tulu").expect("tulu");
        let msgs = [
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello"),
            Message::new("user", "2+2?"),
        ];
        let out = t.render(&msgs, true, "", "</s>").expect("render");
        assert_eq!(
            out,
            "<|user|>\nHi\n<|assistant|>\nHello</s>\n<|user|>\n2+2?\n<|assistant|>\n"
        );
        let last = t.render(&msgs[..2], false, "", "</s>").expect("render");
        assert_eq!(last, "<|user|>\nHi\n<|assistant|>\nHello</s>");
    }

    #[test]
    fn chatml_and_model_template() {
        let msgs = [Message::new("user", "What is the capital of France?")];
        let t = ChatTemplate::builtin("chatml").expect("chatml");
        assert_eq!(
            t.render(&msgs, true, "", "").expect("render"),
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
        let m = ChatTemplate::jinja("model", SMOLLM2).expect("compile");
        let out = m.render(&msgs, true, "", "").expect("render");
        assert!(out.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
        assert!(out.ends_with("<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn python_methods_and_raise_exception() {
        let t = ChatTemplate::jinja(
            "x",
            "{% for m in messages %}{% if m['role'] not in ['user'] %}{{ raise_exception('bad role ' + m['role']) }}{% endif %}{{ m['content'].strip().upper() }}{% endfor %}",
        )
        .expect("compile");
        assert_eq!(
            t.render(&[Message::new("user", "  hi ")], false, "", "")
                .expect("render"),
            "HI"
        );
        let err = t
            .render(&[Message::new("tool", "x")], false, "", "")
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("bad role tool"), "{err}");
    }

    #[test]
    fn unknown_builtin_is_an_error() {
        assert!(ChatTemplate::builtin("alpaca").is_err());
    }
}
